/**
 * The embedded ClickHouse engine's allocator settings. chDB's jemalloc reads them once, when chDB loads, so this
 * module is imported ahead of chDB (clickhouse.ts): every process that embeds the engine (the CLI, the benchmark's
 * baselines, the tests) runs it alike. chDB's built-in setting keeps the pages a bulk insert freed for 5 s; during a
 * sink's inserts that held ~100 MB more resident memory. Decaying them within 1 s costs the engine ~9% of its bulk
 * insert speed and the sink nothing measurable (its JavaScript thread is what it waits on); at once, 15% of the
 * sink's throughput. A user's own JE_MALLOC_CONF wins, an empty one included (chDB's built-in setting).
 */
process.env.JE_MALLOC_CONF ??= 'dirty_decay_ms:1000,muzzy_decay_ms:0';
