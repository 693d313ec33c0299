import { CompressionTypes, type Producer } from 'kafkajs';
import type { ChangeCodec } from './codec.js';
import {
  apiArn, eventId, integrationArn,
  type ApiInfo, type ChangeOp, type ChangeSource, type IntegrationChange, type IntegrationState, type SnapshotCompletion,
} from './integration-model.js';
import { inSends, namingWriteRefusal } from './kafka.js';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';

/** One state of one integration as a source saw it; `position` is the source's own position (snapshot id, CloudTrail event id). */
export interface Observation {
  account_id: string;
  region: string;
  api_id: string;
  integration_id: string;
  op: Exclude<ChangeOp, 'SNAPSHOT_COMPLETE'>;
  event_time: number;
  observed_at: number;
  source: ChangeSource;
  position: string;
  api: ApiInfo | null;
  after: IntegrationState | null;
}

/**
 * Events per send. A send encodes and frames its events in one go on the JS thread, which meanwhile answers nothing
 * else (a snapshot neither reads AWS's answers nor sends its next calls): sends of 500 stalled it for 16-18 ms (p99
 * event-loop delay), sends of 100 for 6-9 ms, and the snapshot went from 0.87-0.92 of the bare list loop to 0.95-0.99
 * (bench/snapshot.ts). Callers that gather events for the emitter hand them over in batches of this size.
 */
export const SEND_BATCH = 100;

/** A producer, or an open kafkajs transaction: both send. */
export type Sender = Pick<Producer, 'send'>;

/**
 * The one way change events reach Kafka, shared by the snapshotter and the CloudTrail listener: builds the
 * IntegrationChange, attaches its source position, encodes it through the registry and waits for acks=all.
 */
export function createChangeEmitter(deps: { producer: Producer; codec: ChangeCodec; topic: string; partitionCount: number; logger: Logger; metrics: Metrics }) {
  const { producer, codec, topic, metrics } = deps;
  const log = deps.logger.child({ component: 'emitter' });

  function toChange(observation: Observation): IntegrationChange {
    const { position, ...rest } = observation;
    const arn = integrationArn(rest.region, rest.api_id, rest.integration_id);
    return { ...rest, event_id: eventId(position, arn), arn, snapshot: null };
  }

  async function send(via: Sender, changes: IntegrationChange[], partition?: (change: IntegrationChange, index: number) => number): Promise<void> {
    for (let start = 0; start < changes.length; start += SEND_BATCH) {
      const chunk = changes.slice(start, start + SEND_BATCH);
      const messages = await Promise.all(chunk.map(async (change, index) => {
        const { key, value } = await codec.encode(
          { account_id: change.account_id, region: change.region, api_id: change.api_id, integration_id: change.integration_id },
          change,
        );
        return {
          key,
          value,
          partition: partition?.(change, start + index),
          headers: { 'apigw.event_id': change.event_id, 'apigw.op': change.op, 'apigw.source': change.source.type },
        };
      }));
      for (const part of inSends(messages)) await via.send({ topic, acks: -1, compression: CompressionTypes.None, messages: part }).catch(namingWriteRefusal(topic));
      for (const change of chunk) metrics.eventsProduced.inc({ source: change.source.type, op: change.op });
    }
  }

  return {
    async emit(observations: Observation[], via: Sender = producer): Promise<void> {
      await send(via, observations.map(toChange));
    },

    /**
     * Marks a complete read of a scope — an account and region, or one API of it (`api_id`) — on every
     * partition, after all its events were sent, so that each partition's consumer can delete the keys of that
     * scope it holds and the read did not see.
     */
    async completeSnapshot(
      scope: { account_id: string; region: string; api_id?: string; event_time?: number; observed_at: number; source: ChangeSource; snapshot: SnapshotCompletion },
      via: Sender = producer,
    ): Promise<void> {
      const arn = apiArn(scope.region, scope.api_id || '*');
      const marker: IntegrationChange = {
        event_id: eventId(`snapshot-complete:${scope.snapshot.snapshot_id}`, arn),
        op: 'SNAPSHOT_COMPLETE',
        // Deletions the marker causes happened at this time: the CloudTrail event's, or the end of the snapshot.
        event_time: scope.event_time ?? scope.observed_at,
        observed_at: scope.observed_at,
        source: scope.source,
        account_id: scope.account_id,
        region: scope.region,
        api_id: scope.api_id ?? '',
        integration_id: '',
        arn,
        api: null,
        after: null,
        snapshot: scope.snapshot,
      };
      const markers = Array.from({ length: deps.partitionCount }, () => marker);
      await send(via, markers, (_change, index) => index);
      log.info({ region: scope.region, apiId: scope.api_id, snapshotId: scope.snapshot.snapshot_id, partitions: deps.partitionCount }, 'completion marked on every partition');
    },
  };
}

export type ChangeEmitter = ReturnType<typeof createChangeEmitter>;
