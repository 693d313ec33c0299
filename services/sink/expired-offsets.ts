/** A partition's offsets `from` to `to` - 1. */
export interface OffsetRange {
  from: number;
  to: number;
}

/**
 * The offsets of each partition that the topic's retention deleted before the sink wrote what they held, as the sink
 * finds them: as it starts (the group's committed offset below the partition's first), as it starts over (what it
 * last wrote below the partition's first), or as a batch begins past where the partition's last one ended (kafkajs
 * reset a position the retention had overtaken). Several of them can find the same offsets, in any order; each
 * offset is said once.
 */
export class ExpiredOffsets {
  // Per partition, the last range said, grown by every range said after it that touches it. Ranges found later end
  // no earlier (a partition's first offset only grows), so one range per partition is enough to say each offset once.
  private readonly said = new Map<number, OffsetRange>();

  /** The parts of `from` to `to` - 1 not said before, now counted as said. */
  note(partition: number, from: number, to: number): OffsetRange[] {
    if (from < 0 || from >= to) return [];
    const before = this.said.get(partition);
    if (!before || from > before.to || to < before.from) {
      this.said.set(partition, { from, to });
      return [{ from, to }];
    }
    this.said.set(partition, { from: Math.min(from, before.from), to: Math.max(to, before.to) });
    return [{ from, to: Math.min(to, before.from) }, { from: Math.max(from, before.to), to }].filter((part) => part.from < part.to);
  }

  clear(): void {
    this.said.clear();
  }
}
