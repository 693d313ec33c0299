import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Everything the stack downloads or writes lives under this checkout's .stack/, so two checkouts never share a path. */
export const PROJECT_ROOT = fileURLToPath(new URL('..', import.meta.url));
export const STACK_DIR = process.env.APIGW_STACK_DIR ?? join(PROJECT_ROOT, '.stack');
export const CACHE_DIR = join(STACK_DIR, 'cache');
export const RUN_DIR = join(STACK_DIR, 'run');

export const KAFKA_VERSION = '4.1.1';
// 3.0.9 is the newest 3.x whose `all` zip is served on Maven Central (3.3.x publishes no such classifier).
export const APICURIO_VERSION = '3.0.9';
export const MOTO_VERSION = '5.2.5';
