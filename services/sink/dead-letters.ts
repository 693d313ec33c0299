import type { IHeaders, Kafka, KafkaMessage, Message, Producer } from 'kafkajs';
import type { ChangeCodec } from '../shared/codec.js';
import { ApigwError, PoisonMessageError } from '../shared/errors.js';
import { createIdempotentProducer, dlqTopic, groupPositions, inSends, kafkaErrorType, namingWriteRefusal } from '../shared/kafka.js';
import type { Logger } from '../shared/logger.js';
import { checkApplicable } from './change-applier.js';

/**
 * A dead letter's headers: the message's own, why it failed, and (`origin`, when the sink dead-letters it) where on the
 * change topic it was. A message dead-lettered again by a redrive keeps its origin and counts its attempts.
 */
export function deadLetterHeaders(message: KafkaMessage, error: PoisonMessageError, origin?: { topic: string; partition: number }): IHeaders {
  const headers: IHeaders = { ...message.headers, 'dlq.reason': error.reason, 'dlq.error': error.message.slice(0, 1000) };
  if (origin) Object.assign(headers, { 'dlq.topic': origin.topic, 'dlq.partition': String(origin.partition), 'dlq.offset': message.offset });
  return headers;
}

/**
 * On a dead letter the dead-letter topic refused as too large (one made before it had room for them): its value's
 * size in bytes. The letter goes without its value, which stays on the change topic at the letter's origin
 * (`dlq.topic`, `dlq.partition`, `dlq.offset`) for that topic's retention.
 */
export const VALUE_OMITTED = 'dlq.value-omitted';

/**
 * Sends dead letters; one that is too large for the dead-letter topic goes without its value (`VALUE_OMITTED`), and
 * `onOmitted` hears of it. Refused, it would stop the sink at the same message every time it started.
 */
export async function sendDeadLetters(
  producer: Producer, deadLetterTopic: string, letters: Message[], onOmitted: (letter: Message, valueBytes: number) => void,
): Promise<void> {
  try {
    await producer.send({ topic: deadLetterTopic, acks: -1, messages: letters });
  } catch (error) {
    if (!tooLarge(error)) namingWriteRefusal(deadLetterTopic)(error);
    if (letters.length > 1) {
      for (const letter of letters) await sendDeadLetters(producer, deadLetterTopic, [letter], onOmitted);
      return;
    }
    const [letter] = letters as [Message];
    const valueBytes = Buffer.byteLength(letter.value ?? '');
    await producer.send({ topic: deadLetterTopic, acks: -1, messages: [{ ...letter, value: null, headers: { ...letter.headers, [VALUE_OMITTED]: String(valueBytes) } }] })
      .catch(namingWriteRefusal(deadLetterTopic));
    onOmitted(letter, valueBytes);
  }
}

/** `sendDeadLetters`'s `onOmitted` that says so in the log, with where the value stays. */
export function logValueOmitted(log: Logger, deadLetterTopic: string): (letter: Message, valueBytes: number) => void {
  return ({ headers }, valueBytes) => {
    const origin = ['dlq.topic', 'dlq.partition', 'dlq.offset'].map((name) => headers?.[name]?.toString() ?? '?');
    log.error({ valueBytes, origin: origin.join('/') },
      `a dead letter was too large for ${deadLetterTopic}: sent without its value, which stays on ${origin[0]} partition ${origin[1]} offset ${origin[2]} for that topic's retention`);
  };
}

/** The broker refused a send for its size. */
function tooLarge(error: unknown): boolean {
  const type = kafkaErrorType(error);
  return type === 'MESSAGE_TOO_LARGE' || type === 'RECORD_LIST_TOO_LARGE';
}

/** What a redrive did with a dead letter. */
export type RedriveOutcome = 'sent back' | 'left to the next read' | 'still failing' | 'expired';

export interface RedriveCount {
  outcome: RedriveOutcome;
  /** Why it still fails (`dlq.reason`), or what it is. */
  reason: string;
  messages: number;
  /** The first one's error, or why it is not sent back. */
  example: string;
}

export interface RedriveReport {
  deadLetterTopic: string;
  /** Messages read: from the redrive group's position to each partition's end when the redrive began. */
  read: number;
  counts: RedriveCount[];
  /** Stopped before reaching the ends; the next redrive goes on from where this one committed. */
  interrupted: boolean;
}

export interface RedriveDeps {
  kafka: Kafka;
  codec: ChangeCodec;
  topic: string;
  /** Where the redrive's position in the dead-letter topic is committed. */
  groupId: string;
  /** Decide and count only: nothing is sent and no position is committed. */
  dryRun: boolean;
  logger: Logger;
  /** Aborted: the redrive stops after the batch under way, with its position committed. */
  signal: AbortSignal;
  onProgress?: (done: number, total: number) => void;
}

/**
 * Why only these go back: the sink applies a change by its observation time (an older one than it holds is stale,
 * one it holds already writes nothing), so a change of the listener may come back late, or twice. A snapshot's
 * events and markers, and those of the listener's reads of a whole API, are applied only within their read: an old
 * read's event makes the partition's read under way look abandoned, and a marker whose read the sink no longer
 * tracks would delete what that read saw. The next read of the same scope sees everything they carried.
 */
async function outcomeOf(message: KafkaMessage, codec: ChangeCodec): Promise<{ outcome: RedriveOutcome; reason: string; detail: string }> {
  const { value } = await codec.decodeChange(message.key, message.value, () => undefined);
  checkApplicable(value);
  if (value.op === 'SNAPSHOT_COMPLETE') return { outcome: 'left to the next read', reason: 'marker', detail: 'a marker applies only to its read' };
  if (value.source.snapshot_id) {
    return { outcome: 'left to the next read', reason: `${value.source.type.toLowerCase()} read`, detail: 'an event of a read applies only within it' };
  }
  return { outcome: 'sent back', reason: 'change', detail: 'a change of the listener that decodes now' };
}

/**
 * Sends dead letters that decode now back to the change topic: from the redrive group's committed position to each
 * partition's end as the redrive begins (what it dead-letters again, at the end, waits for the next redrive). A
 * message that still fails is dead-lettered again, never dropped; each batch's sends are acknowledged before its
 * position is committed. Stopped between the two, the next redrive sends the batch again: the sink writes nothing for
 * a change it holds already.
 */
export async function redriveDeadLetters(deps: RedriveDeps): Promise<RedriveReport> {
  const deadLetterTopic = dlqTopic(deps.topic);
  const log = deps.logger.child({ component: 'redrive' });
  const valueOmitted = logValueOmitted(log, deadLetterTopic);
  const counts = new Map<string, RedriveCount>();
  const count = (outcome: RedriveOutcome, reason: string, example: string) => {
    const key = `${outcome}\u0000${reason}`;
    const entry = counts.get(key) ?? counts.set(key, { outcome, reason, messages: 0, example }).get(key)!;
    entry.messages++;
  };
  const report = (read: number, interrupted: boolean): RedriveReport => ({ deadLetterTopic, read, counts: [...counts.values()], interrupted });

  /** What goes back to the change topic and what is dead-lettered again, counting each outcome. */
  async function sortOut(messages: KafkaMessage[], partition: number): Promise<{ sendBack: Message[]; again: Message[] }> {
    const sendBack: Message[] = [];
    const again: Message[] = [];
    for (const message of messages) {
      const at = `${deadLetterTopic}/${partition}/${message.offset}`;
      const attempts = { 'dlq.redrive-attempts': String(Number(message.headers?.['dlq.redrive-attempts']?.toString() ?? 0) + 1) };
      try {
        const { outcome, reason, detail } = await outcomeOf(message, deps.codec);
        count(outcome, reason, detail);
        // With `redrive.from` instead of the dlq headers, and stamped now: the sink dates when a partition's
        // messages began from their Kafka timestamps (see its read tracking), and an old one would mislead it. The
        // count of attempts goes with it: should the sink dead-letter it again, the next redrive counts on from it.
        if (outcome === 'sent back') {
          sendBack.push({ key: message.key, value: message.value, headers: { ...withoutDeadLetterHeaders(message.headers), 'redrive.from': at, ...attempts } });
        }
      } catch (error) {
        if (!(error instanceof PoisonMessageError)) throw error;
        count('still failing', error.reason, error.message);
        log.debug({ at, reason: error.reason, err: error.message }, deps.dryRun ? 'dead letter still fails' : 'dead letter still fails; dead-lettered again');
        again.push({ key: message.key, value: message.value, headers: { ...deadLetterHeaders(message, error), ...attempts } });
      }
    }
    return { sendBack, again };
  }

  const { ranges, expired } = await pendingRanges(deps.kafka, deadLetterTopic, deps.groupId, deps.dryRun);
  if (expired > 0) {
    const example = `deleted by ${deadLetterTopic}'s retention before a redrive read them`;
    counts.set('expired', { outcome: 'expired', reason: 'retention', messages: expired, example });
    log.warn({ deadLetterTopic, expired }, `dead letters ${example}: lost`);
  }
  const total = [...ranges.values()].reduce((sum, range) => sum + range.end - range.next, 0);
  if (total === 0) return report(0, false);

  // A dry run reads from the group's position under a group of its own, so that it commits nothing for the redrive.
  const consumer = deps.kafka.consumer({
    groupId: deps.dryRun ? `${deps.groupId}.dry-run-${process.pid}-${Date.now()}` : deps.groupId,
    // A one-off command: a consumer that fails ends it, rather than restarting in a loop.
    retry: { restartOnFailure: async () => false },
  });
  const producer = deps.dryRun ? undefined : createIdempotentProducer(deps.kafka);
  let read = 0;
  let failure: unknown;
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => { finish = resolve; });
  deps.signal.addEventListener('abort', () => finish(), { once: true });

  consumer.on(consumer.events.CRASH, ({ payload }) => {
    failure ??= payload.error;
    finish();
  });
  // Two redrives that started at once both found the group empty: the one left without the partitions stops.
  consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
    const assigned = new Set(payload.memberAssignment[deadLetterTopic] ?? []);
    if ([...ranges.keys()].some((partition) => !assigned.has(partition))) {
      failure ??= anotherRedrive(deadLetterTopic, deps.groupId);
      finish();
    }
  });
  await producer?.connect();
  await consumer.connect();
  try {
    await consumer.subscribe({ topic: deadLetterTopic, fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch }) => {
        const range = ranges.get(batch.partition);
        if (!range || deps.signal.aborted || failure) return;
        const messages = batch.messages.filter((m) => Number(m.offset) >= range.next && Number(m.offset) < range.end);
        if (messages.length === 0) return;
        try {
          const { sendBack, again } = await sortOut(messages, batch.partition);
          const last = Number(messages.at(-1)!.offset);
          if (producer) {
            for (const chunk of inSends(sendBack)) await producer.send({ topic: deps.topic, acks: -1, messages: chunk }).catch(namingWriteRefusal(deps.topic));
            for (const chunk of inSends(again)) await sendDeadLetters(producer, deadLetterTopic, chunk, valueOmitted);
            await consumer.commitOffsets([{ topic: deadLetterTopic, partition: batch.partition, offset: String(last + 1) }]);
          }
          read += messages.length;
          range.next = last + 1;
          deps.onProgress?.(read, total);
          if ([...ranges.values()].every((r) => r.next >= r.end)) finish();
        } catch (error) {
          // The registry or a broker failed: stop here; what is committed stays done.
          failure = error;
          finish();
        }
      },
    });
    // The group's position, unless the dry run's group, which has none; past the retention's start either way.
    for (const [partition, { next }] of ranges) consumer.seek({ topic: deadLetterTopic, partition, offset: String(next) });
    await finished;
  } finally {
    await consumer.disconnect();
    await producer?.disconnect();
  }
  if (failure) throw failure;
  const done = report(read, read < total);
  log.info({ read, total, dryRun: deps.dryRun, counts: done.counts.map(({ outcome, reason, messages }) => ({ outcome, reason, messages })) },
    done.interrupted ? 'redrive stopped before the end; the next redrive goes on from here' : 'redrive done');
  return done;
}

const withoutDeadLetterHeaders = (headers: IHeaders | undefined): IHeaders =>
  Object.fromEntries(Object.entries(headers ?? {}).filter(([name]) => !name.startsWith('dlq.')));

const anotherRedrive = (topic: string, groupId: string) => new ApigwError(`another redrive of ${topic} is running (its consumer group ${groupId} has a member)`);

/**
 * Per partition with messages to redrive: the next offset (the group's position, or the partition's start) and its
 * end; and how many dead letters the retention deleted past the group's position, which a redrive that is not a dry
 * run moves over, so that they are reported once.
 */
async function pendingRanges(
  kafka: Kafka, topic: string, groupId: string, dryRun: boolean,
): Promise<{ ranges: Map<number, { next: number; end: number }>; expired: number }> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const [positions, [group]] = await Promise.all([groupPositions(admin, groupId, topic), admin.describeGroups([groupId]).then((d) => d.groups)]);
    if (group && group.members.length > 0) throw anotherRedrive(topic, groupId);
    const ranges = new Map<number, { next: number; end: number }>();
    const passed: { partition: number; offset: string }[] = [];
    let expired = 0;
    for (const { partition, committed, low, high } of positions) {
      const position = Math.max(committed, 0);
      if (position < low) {
        expired += low - position;
        passed.push({ partition, offset: String(low) });
      }
      const next = Math.max(position, low);
      if (next < high) ranges.set(partition, { next, end: high });
    }
    if (passed.length > 0 && !dryRun) await admin.setOffsets({ groupId, topic, partitions: passed });
    return { ranges, expired };
  } finally {
    await admin.disconnect();
  }
}
