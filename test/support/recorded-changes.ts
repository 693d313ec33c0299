/**
 * Changes made in the AWS emulator "as" a principal, each recorded as the CloudTrail event AWS documents for it
 * (event source apigateway.amazonaws.com; request parameters are the call's path parameters and body in
 * camelCase; response elements the answer's body).
 */
import {
  ApiGatewayV2Client, CreateApiCommand, CreateIntegrationCommand, DeleteApiCommand, DeleteIntegrationCommand,
  ReimportApiCommand, UpdateIntegrationCommand,
  type CreateIntegrationCommandInput, type UpdateIntegrationCommandInput,
} from '@aws-sdk/client-apigatewayv2';
import type { CloudTrailServer, EventToRecord, Principal } from './cloudtrail-server.js';

// Values of these fields are user maps: their keys stay as they are.
const MAP_FIELDS = new Set(['RequestParameters', 'RequestTemplates', 'ResponseParameters', 'Tags']);

function camel(value: unknown, key?: string): unknown {
  if (Array.isArray(value)) return value.map((item) => camel(item));
  if (value instanceof Date) return value.toISOString();
  if (!value || typeof value !== 'object' || (key && MAP_FIELDS.has(key))) return value;
  return Object.fromEntries(Object.entries(value)
    .filter(([k, v]) => v !== undefined && k !== '$metadata')
    .map(([k, v]) => [k.charAt(0).toLowerCase() + k.slice(1), camel(v, k)]));
}

export const PRINCIPALS = {
  alice: { arn: 'arn:aws:sts::123456789012:assumed-role/PlatformEngineer/alice', sourceIp: '203.0.113.10', userAgent: 'aws-cli/2.17.0' },
  bob: { arn: 'arn:aws:sts::123456789012:assumed-role/Deployer/bob', sourceIp: '203.0.113.20', userAgent: 'terraform/1.9.5' },
  ci: { arn: 'arn:aws:sts::123456789012:assumed-role/GitHubActions/ci-run-4821', sourceIp: '198.51.100.44', userAgent: 'aws-sdk-js/3.600.0' },
} satisfies Record<string, Principal>;

export function createRecordingClient({ aws, trail, region }: { aws: ApiGatewayV2Client; trail: CloudTrailServer; region: string }) {
  const record = (event: Omit<EventToRecord, 'region'>) => trail.record({ region, ...event });
  return {
    async createIntegration(principal: Principal, input: CreateIntegrationCommandInput, extra: Partial<EventToRecord> = {}) {
      const result = await aws.send(new CreateIntegrationCommand(input));
      const eventId = record({ eventName: 'CreateIntegration', principal, requestParameters: camel(input) as Record<string, unknown>, responseElements: camel(result) as Record<string, unknown>, ...extra });
      return { integrationId: result.IntegrationId!, eventId };
    },
    async updateIntegration(principal: Principal, input: UpdateIntegrationCommandInput, extra: Partial<EventToRecord> = {}) {
      const result = await aws.send(new UpdateIntegrationCommand(input));
      return record({ eventName: 'UpdateIntegration', principal, requestParameters: camel(input) as Record<string, unknown>, responseElements: camel(result) as Record<string, unknown>, ...extra });
    },
    async deleteIntegration(principal: Principal, apiId: string, integrationId: string, extra: Partial<EventToRecord> = {}) {
      await aws.send(new DeleteIntegrationCommand({ ApiId: apiId, IntegrationId: integrationId }));
      return record({ eventName: 'DeleteIntegration', principal, requestParameters: { apiId, integrationId }, responseElements: null, ...extra });
    },
    async deleteApi(principal: Principal, apiId: string, extra: Partial<EventToRecord> = {}) {
      await aws.send(new DeleteApiCommand({ ApiId: apiId }));
      return record({ eventName: 'DeleteApi', principal, requestParameters: { apiId }, responseElements: null, ...extra });
    },
    async reimportApi(principal: Principal, apiId: string, openApiYaml: string, extra: Partial<EventToRecord> = {}) {
      const result = await aws.send(new ReimportApiCommand({ ApiId: apiId, Body: openApiYaml }));
      return record({ eventName: 'ReimportApi', principal, requestParameters: { apiId, body: openApiYaml }, responseElements: camel(result) as Record<string, unknown>, ...extra });
    },
    /**
     * ImportApi as CloudTrail records it. The emulator has no ImportApi, so the API is made with CreateApi and
     * ReimportApi, which leave the same state behind.
     */
    async importApi(principal: Principal, name: string, openApiYaml: string, extra: Partial<EventToRecord> = {}) {
      const api = await aws.send(new CreateApiCommand({ Name: name, ProtocolType: 'HTTP' }));
      const result = await aws.send(new ReimportApiCommand({ ApiId: api.ApiId, Body: openApiYaml }));
      const eventId = record({ eventName: 'ImportApi', principal, requestParameters: { body: openApiYaml }, responseElements: camel(result) as Record<string, unknown>, ...extra });
      return { apiId: api.ApiId!, eventId };
    },
    /** Records an event without changing anything (other services, REST APIs, replays). */
    record,
  };
}

/** An OpenAPI 3 document with one HTTP_PROXY integration per path, for import and reimport. */
export function openApiWith(paths: Record<string, string>): string {
  const lines = ['openapi: "3.0.1"', 'info:', '  title: imported', '  version: "1"', 'paths:'];
  for (const [path, uri] of Object.entries(paths)) {
    lines.push(`  ${path}:`, '    get:', '      x-amazon-apigateway-integration:', '        type: HTTP_PROXY', '        httpMethod: GET',
      `        uri: ${uri}`, '        payloadFormatVersion: "1.0"', '      responses:', '        default:', '          description: ok');
  }
  return `${lines.join('\n')}\n`;
}
