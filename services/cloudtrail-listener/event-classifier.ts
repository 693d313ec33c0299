import type { Integration } from '@aws-sdk/client-apigatewayv2';
import { recordedIntegration } from './recorded-integration.js';

/**
 * Which CloudTrail management events change API Gateway v2 integrations, and which resource each one touches.
 * The table is in the README ("CloudTrail events the listener follows").
 */

export type ListenerAction =
  | { kind: 'integration'; apiId: string; integrationId: string; op: 'CREATE' | 'UPDATE' | 'DELETE' }
  /** Integrations of the API may have appeared, changed or vanished: read them all. */
  | { kind: 'api'; apiId: string };

export interface CloudTrailRecord {
  eventId: string;
  eventName: string;
  /** Epoch ms; CloudTrail keeps whole seconds. */
  eventTime: number;
  /** Position in LookupEvents' answer, newest first: orders events of the same second. */
  recency: number;
  principalArn: string | null;
  sourceIp: string | null;
  userAgent: string | null;
  action: ListenerAction;
  /** The integration a create or update call answered, when CloudTrail kept it: that call's after-image. */
  recorded?: Integration;
}

const FOLLOWED = new Set(['CreateIntegration', 'UpdateIntegration', 'DeleteIntegration', 'DeleteApi', 'ImportApi', 'ReimportApi', 'CreateApi']);

interface CloudTrailEventDetail {
  eventID?: string;
  eventName?: string;
  eventSource?: string;
  eventTime?: string;
  errorCode?: string;
  sourceIPAddress?: string;
  userAgent?: string;
  userIdentity?: { arn?: string; type?: string; invokedBy?: string };
  requestParameters?: Record<string, unknown> | null;
  responseElements?: Record<string, unknown> | null;
}

const text = (value: unknown): string | undefined => (typeof value === 'string' && value !== '' ? value : undefined);

function actionOf(name: string, request: Record<string, unknown>, response: Record<string, unknown>): ListenerAction | null {
  // REST APIs (v1) share the event source and some event names; their requests name a restApiId.
  if ('restApiId' in request) return null;
  const requestApi = text(request.apiId);
  switch (name) {
    case 'CreateIntegration': {
      if (!requestApi) return null;
      const integrationId = text(response.integrationId);
      // Without the answer (CloudTrail leaves out response elements above 100 KB: large request templates), the new
      // integration's id is unknown: the API's integrations are read instead.
      return integrationId ? { kind: 'integration', apiId: requestApi, integrationId, op: 'CREATE' } : { kind: 'api', apiId: requestApi };
    }
    case 'UpdateIntegration':
    case 'DeleteIntegration': {
      const integrationId = text(request.integrationId);
      const op = name === 'UpdateIntegration' ? 'UPDATE' : 'DELETE';
      return requestApi && integrationId ? { kind: 'integration', apiId: requestApi, integrationId, op } : null;
    }
    case 'DeleteApi':
    case 'ReimportApi':
      return requestApi ? { kind: 'api', apiId: requestApi } : null;
    case 'ImportApi': {
      const apiId = text(response.apiId);
      return apiId ? { kind: 'api', apiId } : null;
    }
    case 'CreateApi': {
      // Only quick create (a target) makes a managed integration.
      const apiId = text(response.apiId);
      return apiId && text(request.target) ? { kind: 'api', apiId } : null;
    }
    default:
      return null;
  }
}

/** Reads one LookupEvents entry; null for anything that does not change a v2 integration. Cheap for the rest. */
export function classifyEvent(event: { EventId?: string; EventName?: string; CloudTrailEvent?: string }, recency = 0): CloudTrailRecord | null {
  if (!event.EventName || !FOLLOWED.has(event.EventName) || !event.CloudTrailEvent) return null;
  let detail: CloudTrailEventDetail;
  try {
    detail = JSON.parse(event.CloudTrailEvent) as CloudTrailEventDetail;
  } catch {
    return null;
  }
  if (detail.eventSource !== 'apigateway.amazonaws.com' || detail.errorCode) return null;
  const action = actionOf(event.EventName, detail.requestParameters ?? {}, detail.responseElements ?? {});
  const eventTime = Date.parse(detail.eventTime ?? '');
  if (!action || Number.isNaN(eventTime)) return null;
  const recorded = action.kind === 'integration' && action.op !== 'DELETE' ? recordedIntegration(detail.responseElements, action.integrationId) : undefined;
  return {
    eventId: event.EventId ?? detail.eventID ?? '',
    eventName: event.EventName,
    eventTime,
    recency,
    principalArn: detail.userIdentity?.arn ?? detail.userIdentity?.invokedBy ?? null,
    sourceIp: detail.sourceIPAddress ?? null,
    userAgent: detail.userAgent ?? null,
    action,
    ...(recorded && { recorded }),
  };
}
