/** A partition's offsets `from` to `to` - 1. */
export interface OffsetRange {
  from: number;
  to: number;
}

/** Where a batch kafkajs hands out lies in its partition (its START_BATCH_PROCESS event). */
export interface BatchPosition {
  partition: number;
  /** Its first offset, control records (transaction markers) and aborted events counted; null when it has none. */
  firstOffset: string | null;
  lastOffset: string;
}

/**
 * The offsets of each partition that the topic's retention deleted before the sink wrote what they held, as the sink
 * finds them: as it starts (the group's committed offset below the partition's first), as it starts over (what it
 * last wrote below the partition's first), or as a batch begins past where the partition's last one ended (kafkajs
 * reset a position the retention had overtaken). Several of them can find the same offsets, in any order; each
 * offset is said once.
 */
export class ExpiredOffsets {
  /** `say`: told of each range once, as it is found. */
  constructor(private readonly say: (partition: number, range: OffsetRange) => void) {}

  // Per partition, the last range said, grown by every range said after it that touches it. Ranges found later end
  // no earlier (a partition's first offset only grows), so one range per partition is enough to say each offset once.
  private readonly said = new Map<number, OffsetRange>();
  // Where each partition's next batch begins: one past the last offset of the batch before.
  private readonly nextOffsets = new Map<number, number>();
  /** The topic keeps only each key's last event (set by hand): its offsets have gaps of their own. */
  compacted = false;

  /** Says the parts of `from` to `to` - 1 not said before, and returns them. */
  note(partition: number, from: number, to: number): OffsetRange[] {
    const unsaid = this.unsaid(partition, from, to);
    for (const range of unsaid) this.say(partition, range);
    return unsaid;
  }

  private unsaid(partition: number, from: number, to: number): OffsetRange[] {
    if (from < 0 || from >= to) return [];
    const before = this.said.get(partition);
    if (!before || from > before.to || to < before.from) {
      this.said.set(partition, { from, to });
      return [{ from, to }];
    }
    this.said.set(partition, { from: Math.min(from, before.from), to: Math.max(to, before.to) });
    return [{ from, to: Math.min(to, before.from) }, { from: Math.max(from, before.to), to }].filter((part) => part.from < part.to);
  }

  /**
   * A batch begins where its partition's last one ended: a topic that is not compacted numbers its records without
   * gaps, and transaction markers and aborted events, which never reach the sink, count in a batch's offsets. One
   * that begins later follows kafkajs's reset of a position the retention overtook ("Offset out of range", and no
   * more): a sink that fell that far behind, a stalled one, while its writes succeeded. After a failed write or read
   * (`startingOver`) the sink goes back to what it last wrote, and says the offsets from there (see note).
   */
  batchBegins({ partition, firstOffset, lastOffset }: BatchPosition, startingOver: boolean): OffsetRange[] {
    const expected = this.nextOffsets.get(partition);
    this.nextOffsets.set(partition, Number(lastOffset) + 1);
    if (expected === undefined || firstOffset === null || this.compacted || startingOver) return [];
    return this.note(partition, expected, Number(firstOffset));
  }

  /** The group assigned partitions anew: a partition's next batch begins at its committed offset, wherever that is. */
  forgetPositions(): void {
    this.nextOffsets.clear();
  }

  /** The topic was made again, and numbers its offsets anew. */
  clear(): void {
    this.said.clear();
    this.nextOffsets.clear();
  }
}
