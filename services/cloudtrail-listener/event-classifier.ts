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

/** A followed event the listener cannot act on, and why: the next snapshot reads its change, without who made it. */
export interface UnreadableEvent {
  unreadable: string;
}

const missing = (field: string, why = ''): UnreadableEvent => ({ unreadable: `${field} is missing${why}` });
const UNANSWERED = ' (CloudTrail left out the answer, which alone names the API it made)';

function actionOf(name: string, request: Record<string, unknown>, response: Record<string, unknown>): ListenerAction | UnreadableEvent | null {
  // REST APIs (v1) share the event source and some event names; their requests name a restApiId.
  if ('restApiId' in request) return null;
  const requestApi = text(request.apiId);
  switch (name) {
    case 'CreateIntegration':
    case 'UpdateIntegration':
    case 'DeleteIntegration': {
      if (!requestApi) return missing('requestParameters.apiId');
      // A create names its integration only in its answer, which CloudTrail leaves out above 100 KB (large request
      // templates); whichever integration an event does not name, the API's integrations are read instead.
      const integrationId = text(name === 'CreateIntegration' ? response.integrationId : request.integrationId);
      const op = name === 'CreateIntegration' ? 'CREATE' : name === 'UpdateIntegration' ? 'UPDATE' : 'DELETE';
      return integrationId ? { kind: 'integration', apiId: requestApi, integrationId, op } : { kind: 'api', apiId: requestApi };
    }
    case 'DeleteApi':
    case 'ReimportApi':
      return requestApi ? { kind: 'api', apiId: requestApi } : missing('requestParameters.apiId');
    case 'ImportApi': {
      const apiId = text(response.apiId);
      return apiId ? { kind: 'api', apiId } : missing('responseElements.apiId', UNANSWERED);
    }
    case 'CreateApi': {
      // Only quick create (a target) makes a managed integration.
      if (!text(request.target)) return null;
      const apiId = text(response.apiId);
      return apiId ? { kind: 'api', apiId } : missing('responseElements.apiId', UNANSWERED);
    }
    default:
      return null;
  }
}

/**
 * Reads one LookupEvents entry: what it changed, null for anything that does not change a v2 integration (cheap for
 * the rest), or why a followed event cannot be read.
 */
export function classifyEvent(
  event: { EventId?: string; EventName?: string; EventTime?: Date; CloudTrailEvent?: string },
  recency = 0,
): CloudTrailRecord | UnreadableEvent | null {
  if (!event.EventName || !FOLLOWED.has(event.EventName)) return null;
  if (!event.CloudTrailEvent) return missing('CloudTrailEvent');
  let detail: CloudTrailEventDetail;
  try {
    detail = JSON.parse(event.CloudTrailEvent) as CloudTrailEventDetail;
  } catch (error) {
    return { unreadable: `CloudTrailEvent is not JSON: ${(error as Error).message}` };
  }
  if (detail.eventSource !== 'apigateway.amazonaws.com' || detail.errorCode) return null;
  const action = actionOf(event.EventName, detail.requestParameters ?? {}, detail.responseElements ?? {});
  if (!action || 'unreadable' in action) return action;
  // LookupEvents gives the time beside the record too, in whole seconds like the record's own.
  const recordTime = Date.parse(detail.eventTime ?? '');
  const eventTime = Number.isNaN(recordTime) ? event.EventTime?.getTime() : recordTime;
  if (eventTime === undefined || Number.isNaN(eventTime)) return missing('eventTime');
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
