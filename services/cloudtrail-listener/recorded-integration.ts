import { isDeepStrictEqual } from 'node:util';
import type { Integration } from '@aws-sdk/client-apigatewayv2';
import { z } from 'zod';

/**
 * The integration a CreateIntegration or UpdateIntegration call answered, as CloudTrail keeps it in the event's
 * `responseElements`: the API's JSON body, members in camelCase. It is the state that call left behind, which a
 * re-read cannot give once a later change followed it.
 */
const text = z.string().nullish();
const stringMap = z.record(z.string(), z.string()).nullish();

const RecordedIntegration = z.object({
  apiGatewayManaged: z.boolean().nullish(),
  connectionId: text,
  connectionType: text,
  contentHandlingStrategy: text,
  credentialsArn: text,
  description: text,
  integrationId: z.string(),
  integrationMethod: text,
  integrationResponseSelectionExpression: text,
  integrationSubtype: text,
  integrationType: text,
  integrationUri: text,
  passthroughBehavior: text,
  payloadFormatVersion: text,
  requestParameters: stringMap,
  requestTemplates: stringMap,
  responseParameters: z.record(z.string(), z.record(z.string(), z.string())).nullish(),
  templateSelectionExpression: text,
  timeoutInMillis: z.number().int().nullish(),
  tlsConfig: z.object({ serverNameToVerify: text }).nullish(),
});

/**
 * The integration in a call's response elements, in the SDK's shape (as GetIntegration answers); undefined when
 * CloudTrail kept no such answer, or one for another integration.
 */
export function recordedIntegration(responseElements: unknown, integrationId: string): Integration | undefined {
  const parsed = RecordedIntegration.safeParse(responseElements);
  if (!parsed.success || parsed.data.integrationId !== integrationId) return undefined;
  const { tlsConfig, ...members } = parsed.data;
  // The schema kept only Integration's members: each is the SDK's member with its first letter in upper case.
  const integration = Object.fromEntries(Object.entries(members)
    .filter(([, value]) => value !== null && value !== undefined)
    .map(([name, value]) => [name.charAt(0).toUpperCase() + name.slice(1), value])) as Integration;
  if (tlsConfig?.serverNameToVerify) integration.TlsConfig = { ServerNameToVerify: tlsConfig.serverNameToVerify };
  return integration;
}

/**
 * Whether a re-read still shows what a call answered, field by field over what CloudTrail kept of that answer: when
 * it does not, a later change has been made whose event CloudTrail has not made visible yet.
 */
export function stillAsRecorded(recorded: Integration, current: Integration | null): boolean {
  if (current === null) return false;
  return Object.entries(recorded).every(([field, value]) => value === undefined || isDeepStrictEqual(value, current[field as keyof Integration]));
}
