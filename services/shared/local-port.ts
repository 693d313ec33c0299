import type { Server } from 'node:http';
import { ConfigError } from './errors.js';

/**
 * Listens on 127.0.0.1:`port` (0: any free port). A port that cannot be had is the setting `variable`'s fault, said
 * in one line, not a listen error's stack.
 */
export function listenLocally(server: Server, port: number, variable: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'EADDRINUSE') reject(new ConfigError(variable, `port ${port} on 127.0.0.1 is in use by another process`));
      else if (error.code === 'EACCES') reject(new ConfigError(variable, `port ${port} on 127.0.0.1 needs privileges this process lacks`));
      else reject(error);
    });
    server.listen(port, '127.0.0.1', resolve);
  });
}
