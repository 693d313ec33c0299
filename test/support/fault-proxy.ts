import { createServer, request, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';

/** What the proxy does with one request: pass it on (at once or later), drop its connection, or answer it itself. */
export type Fault = 'forward' | 'drop' | { delayMs: number } | { status: number; headers?: Record<string, string>; body?: string };

/** STS's answer to an AssumeRole its caller may not make: a trust policy that does not name the caller, or asks for another external id. */
export function assumeRoleDenied(roleArn: string): Fault {
  return {
    status: 403,
    headers: { 'Content-Type': 'text/xml' },
    body: `<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User: arn:aws:iam::123456789012:user/moto is not authorized to perform: sts:AssumeRole on resource: ${roleArn}</Message></Error><RequestId>4d6b1c5e</RequestId></ErrorResponse>`,
  };
}

/**
 * An HTTP proxy on loopback in front of `target` (a real service of the local stack) that lets a test make it
 * fail: `fault` decides per request, from its head and its body. Its `url` is `target` with the proxy's host and
 * port. `peakInFlight` is the most requests it held at once whose path starts with `counted`.
 */
export async function startFaultProxy(target: string, fault: (request: IncomingMessage, body: string) => Fault, { counted = '/' } = {}) {
  const upstream = new URL(target);
  let inFlight = 0;
  let peakInFlight = 0;
  const server = createServer(async (incoming, outgoing) => {
    if (incoming.url?.startsWith(counted)) {
      peakInFlight = Math.max(peakInFlight, ++inFlight);
      outgoing.once('close', () => inFlight--);
    }
    const body = Buffer.concat(await incoming.toArray());
    const decision = fault(incoming, body.toString());
    if (decision === 'drop') {
      incoming.socket.destroy();
      return;
    }
    if (decision !== 'forward' && 'status' in decision) {
      outgoing.writeHead(decision.status, decision.headers).end(decision.body ?? '');
      return;
    }
    const forwarded = request({ host: upstream.hostname, port: upstream.port, path: incoming.url, method: incoming.method, headers: incoming.headers }, (answer) => {
      const answerNow = () => {
        outgoing.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(outgoing);
      };
      if (decision === 'forward') answerNow();
      else setTimeout(answerNow, decision.delayMs);
    });
    forwarded.on('error', () => outgoing.destroy());
    forwarded.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = new URL(target);
  url.host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url: url.toString().replace(/\/$/, ''),
    peakInFlight: () => peakInFlight,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
