import {
  GetApisCommand, GetIntegrationsCommand, type ApiGatewayV2Client, type GetIntegrationCommandOutput, type Integration,
} from '@aws-sdk/client-apigatewayv2';

export type Columns = Record<string, unknown>;

/** The 21 columns (without api_id) as GetIntegration states them, written out independently of the project's mapping. */
export function expectedColumns(aws: GetIntegrationCommandOutput | Integration): Columns {
  return {
    api_gateway_managed: aws.ApiGatewayManaged ?? false,
    connection_id: aws.ConnectionId ?? null,
    connection_type: aws.ConnectionType ?? null,
    content_handling_strategy: aws.ContentHandlingStrategy ?? null,
    credentials_arn: aws.CredentialsArn ?? null,
    description: aws.Description ?? null,
    integration_id: aws.IntegrationId ?? null,
    integration_method: aws.IntegrationMethod ?? null,
    integration_response_selection_expression: aws.IntegrationResponseSelectionExpression ?? null,
    integration_subtype: aws.IntegrationSubtype ?? null,
    integration_type: aws.IntegrationType ?? null,
    integration_uri: aws.IntegrationUri ?? null,
    passthrough_behavior: aws.PassthroughBehavior ?? null,
    payload_format_version: aws.PayloadFormatVersion ?? null,
    request_parameters: aws.RequestParameters ?? null,
    request_templates: aws.RequestTemplates ?? null,
    response_parameters: aws.ResponseParameters ?? null,
    template_selection_expression: aws.TemplateSelectionExpression ?? null,
    timeout_in_millis: aws.TimeoutInMillis ?? null,
    tls_config_server_name_to_verify: aws.TlsConfig?.ServerNameToVerify ?? null,
  };
}

export const COLUMN_NAMES = Object.keys(expectedColumns({}));

/** Picks the same columns from a row whose maps are already objects. */
export function columnsOf(row: Record<string, unknown>): Columns {
  return Object.fromEntries(COLUMN_NAMES.map((column) => [column, column === 'api_gateway_managed' ? Boolean(row[column]) : row[column] ?? null]));
}

/** Everything the emulator holds in one region, by integration ARN. */
export async function emulatorInventory(aws: ApiGatewayV2Client, region: string): Promise<Map<string, Columns>> {
  const inventory = new Map<string, Columns>();
  for (const api of (await aws.send(new GetApisCommand({}))).Items ?? []) {
    for (const integration of (await aws.send(new GetIntegrationsCommand({ ApiId: api.ApiId }))).Items ?? []) {
      inventory.set(`arn:aws:apigateway:${region}::/apis/${api.ApiId}/integrations/${integration.IntegrationId}`, expectedColumns(integration));
    }
  }
  return inventory;
}
