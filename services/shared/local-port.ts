import type { Server } from 'node:http';
import { ConfigError } from './errors.js';

/**
 * Listens on `host`:`port` (port 0: any free one). A port or host that cannot be had is the fault of the setting
 * that named it (`variables`), said in one line, not a listen error's stack.
 */
export function listenOn(server: Server, { host, port }: { host: string; port: number }, variables: { port: string; host?: string }): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'EADDRINUSE') reject(new ConfigError(variables.port, `port ${port} on ${host} is in use by another process`));
      else if (error.code === 'EACCES') reject(new ConfigError(variables.port, `port ${port} on ${host} needs privileges this process lacks`));
      else if (error.code === 'EADDRNOTAVAIL' && variables.host) reject(new ConfigError(variables.host, `${host} is not an address of this machine`));
      else reject(error);
    });
    server.listen(port, host, resolve);
  });
}
