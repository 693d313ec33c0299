import { mkdirSync } from 'node:fs';
import { stackPorts } from '../services/shared/config.js';
import { RUN_DIR } from './layout.js';
import { kafkaPart, motoPart, registryPart, type StackPart } from './parts.js';
import { isAlive } from '../services/shared/process-alive.js';
import { portOpen, readPid, stopPidFile, waitUntil } from './processes.js';

export interface PartStatus {
  name: string;
  port: number;
  endpoint: string;
  answers: boolean;
  /** pid when this checkout's `stack up` started it and it is alive */
  pid?: number;
}

export function stackParts(env: NodeJS.ProcessEnv = process.env): StackPart[] {
  const ports = stackPorts(env);
  return [kafkaPart(ports), registryPart(ports.registry), motoPart(ports.moto)];
}

/** Installs (once) and starts every part that does not answer yet; idempotent. Returns the names it started. */
export async function stackUp(say: (line: string) => void, env: NodeJS.ProcessEnv = process.env): Promise<string[]> {
  mkdirSync(RUN_DIR, { recursive: true });
  const parts = stackParts(env);
  const started: { part: StackPart; pid: number }[] = [];
  for (const part of parts) {
    if (await part.answers()) {
      const lacking = await part.lacks?.();
      // Left running: it may not be this checkout's. The tests of what it lacks fail until it is restarted.
      say(`${part.name}: already answering at ${part.endpoint}${lacking ? `, but with ${lacking}: \`stack down\` and \`stack up\` restart it with them` : ''}`);
      continue;
    }
    if (!part.installed()) part.install(say);
    const stale = readPid(part.pidFile);
    const ours = stale !== undefined && isAlive(stale);
    // Held, and not by this checkout's (a hung one of ours is restarted): stopping nothing, say whose port it is.
    if (!ours && await portOpen(part.port)) {
      throw new Error(`${part.name}: port ${part.port} is in use by another program, which does not answer as ${part.name}; stop it, or give the stack other ports (APIGW_STACK_*_PORT)`);
    }
    if (ours) await stopPidFile(part.pidFile);
    const pid = part.start(say);
    say(`${part.name}: starting on port ${part.port} (pid ${pid}, log ${part.logFile})`);
    started.push({ part, pid });
  }
  for (const { part, pid } of started) {
    await waitUntil(part.name, () => part.answers(), { timeoutMs: part.startTimeoutMs, pid, logFile: part.logFile });
    say(`${part.name}: ready at ${part.endpoint}`);
  }
  return started.map(({ part }) => part.name);
}

/** Stops what `stack up` of this checkout started (by its pid files), and nothing else. */
export async function stackDown(say: (line: string) => void, only?: string[], env: NodeJS.ProcessEnv = process.env): Promise<void> {
  for (const part of stackParts(env).reverse()) {
    if (only && !only.includes(part.name)) continue;
    const stopped = await stopPidFile(part.pidFile);
    say(stopped ? `${part.name}: stopped` : `${part.name}: not started by this checkout, left alone`);
  }
}

export async function stackStatus(env: NodeJS.ProcessEnv = process.env): Promise<PartStatus[]> {
  return Promise.all(stackParts(env).map(async (part) => {
    const pid = readPid(part.pidFile);
    return { name: part.name, port: part.port, endpoint: part.endpoint, answers: await part.answers(), pid: pid && isAlive(pid) ? pid : undefined };
  }));
}
