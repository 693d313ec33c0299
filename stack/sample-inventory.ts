import {
  ApiGatewayV2Client, CreateApiCommand, CreateIntegrationCommand,
  type CreateIntegrationCommandInput, type ProtocolType,
} from '@aws-sdk/client-apigatewayv2';

type IntegrationRecipe = Omit<CreateIntegrationCommandInput, 'ApiId'>;

const LAMBDA = (name: string) => `arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:${name}/invocations`;

/** Every kind of integration the table's columns describe, for HTTP APIs. */
const HTTP_RECIPES: IntegrationRecipe[] = [
  { IntegrationType: 'AWS_PROXY', IntegrationUri: LAMBDA('orders'), PayloadFormatVersion: '2.0', TimeoutInMillis: 10_000, Description: 'Lambda proxy, payload 2.0' },
  {
    IntegrationType: 'AWS_PROXY', IntegrationSubtype: 'SQS-SendMessage', PayloadFormatVersion: '1.0',
    CredentialsArn: 'arn:aws:iam::123456789012:role/apigw-sqs',
    RequestParameters: { QueueUrl: 'https://sqs.us-east-1.amazonaws.com/123456789012/orders', MessageBody: '$request.body' },
  },
  {
    IntegrationType: 'HTTP_PROXY', IntegrationMethod: 'ANY', IntegrationUri: 'https://backend.example.com/{proxy}', PayloadFormatVersion: '1.0',
    RequestParameters: { 'append:header.x-request-id': '$context.requestId', 'overwrite:path': '/v2/$request.path.proxy', 'remove:querystring.debug': "''" },
    ResponseParameters: { '200': { 'append:header.x-served-by': 'apigw' }, '404': { 'overwrite:statuscode': '410', 'remove:header.server': "''" } },
    Description: '',
  },
  {
    IntegrationType: 'HTTP_PROXY', IntegrationMethod: 'GET', ConnectionType: 'VPC_LINK', ConnectionId: 'vpclink-7x1a2b',
    IntegrationUri: 'arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/internal/50dc6c495c0c9188/0467ef3c8400ae65',
    TlsConfig: { ServerNameToVerify: 'internal.example.com' }, PayloadFormatVersion: '1.0', Description: 'private ALB over a VPC link',
  },
];

/** WebSocket integrations: AWS, HTTP and MOCK with templates, selection expressions, content handling, passthrough. */
const WEBSOCKET_RECIPES: IntegrationRecipe[] = [
  {
    IntegrationType: 'AWS', IntegrationMethod: 'POST', IntegrationUri: LAMBDA('chat'), CredentialsArn: 'arn:aws:iam::123456789012:role/apigw-lambda',
    RequestTemplates: { 'application/json': '{"action":"$input.path(\'$.action\')","body":$input.json(\'$\')}' },
    TemplateSelectionExpression: '\\$default', ContentHandlingStrategy: 'CONVERT_TO_TEXT', PassthroughBehavior: 'WHEN_NO_TEMPLATES',
    TimeoutInMillis: 29_000,
  },
  {
    IntegrationType: 'HTTP', IntegrationMethod: 'POST', IntegrationUri: 'https://chat.example.com/messages',
    RequestParameters: { 'integration.request.header.x-connection': 'context.connectionId' },
    RequestTemplates: { 'application/json': '#set($body = $input.json(\'$\'))\n{"message": $body}', 'text/plain': '$input.body' },
    TemplateSelectionExpression: '$request.body.kind', ContentHandlingStrategy: 'CONVERT_TO_BINARY', PassthroughBehavior: 'NEVER', Description: 'relay',
  },
  {
    IntegrationType: 'MOCK', RequestTemplates: { '$default': '{"statusCode": 200}' }, TemplateSelectionExpression: '\\$default',
    PassthroughBehavior: 'WHEN_NO_MATCH', TimeoutInMillis: 50, Description: '',
  },
];

export interface SampleApi {
  apiId: string;
  name: string;
  protocol: ProtocolType;
  integrationIds: string[];
}

/** Creates `httpApis` HTTP and `websocketApis` WebSocket APIs whose integrations cycle through every recipe. */
export async function seedSampleInventory(client: ApiGatewayV2Client, options: { httpApis: number; websocketApis: number; prefix?: string }): Promise<SampleApi[]> {
  const created: SampleApi[] = [];
  const plan: { protocol: ProtocolType; recipes: IntegrationRecipe[]; count: number }[] = [
    { protocol: 'HTTP', recipes: HTTP_RECIPES, count: options.httpApis },
    { protocol: 'WEBSOCKET', recipes: WEBSOCKET_RECIPES, count: options.websocketApis },
  ];
  for (const { protocol, recipes, count } of plan) {
    for (let i = 0; i < count; i++) {
      const name = `${options.prefix ?? 'sample'}-${protocol.toLowerCase()}-${String(i + 1).padStart(2, '0')}`;
      const api = await client.send(new CreateApiCommand({
        Name: name, ProtocolType: protocol,
        RouteSelectionExpression: protocol === 'WEBSOCKET' ? '$request.body.action' : undefined,
      }));
      const integrationIds: string[] = [];
      const perApi = 1 + (i % recipes.length);
      for (let j = 0; j < perApi; j++) {
        const recipe = recipes[(i + j) % recipes.length]!;
        const integration = await client.send(new CreateIntegrationCommand({ ApiId: api.ApiId, ...recipe }));
        integrationIds.push(integration.IntegrationId!);
      }
      created.push({ apiId: api.ApiId!, name, protocol, integrationIds });
    }
  }
  return created;
}

/** Empties the emulator (moto's reset endpoint), so a demo or test starts from a known inventory. */
export async function resetEmulator(endpoint: string): Promise<void> {
  const response = await fetch(`${endpoint}/moto-api/reset`, { method: 'POST' });
  if (!response.ok) throw new Error(`moto reset failed: HTTP ${response.status}`);
}
