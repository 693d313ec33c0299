#!/usr/bin/env -S node --min-semi-space-size=16
// Runs the TypeScript sources directly through tsx's loader, so there is no build step to forget.
//
// The young generation starts at the size it grows to anyway (16 MiB semi-spaces, node's default maximum). With V8's
// own sizing, a sink's runs fell into two speeds, and in the slow ones it copied 2-3 times the bytes into the old
// generation (600-1,200 MB per 1M events instead of ~350), with half again as many full collections: 1M events,
// four interleaved pairs, 24.5-25.8 s against 28.4-29.9 s, the same peak memory (bench/README.md). V8 takes the
// flag only at start (not from NODE_OPTIONS, not from v8.setFlagsFromString), hence the shebang.
import { register } from 'tsx/esm/api';

// The project targets Node 20 with pinned SDK versions; the SDK's notice about its future Node 22 floor is said
// once in the README instead of on every command.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
register();
await import('../cli/main.ts');
