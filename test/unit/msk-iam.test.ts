import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AuthenticationProviderArgs } from 'kafkajs';
import { MskIamTokenError, mskIamSasl } from '../../services/shared/msk-iam.js';

const KEY = { accessKeyId: 'AKIAEXAMPLEEXAMPLE01', secretAccessKey: 'example-secret' };

/** What the signed token carries: the presigned URL's host and query. */
function signedUrl(token: string): URL {
  return new URL(Buffer.from(token, 'base64url').toString('utf8'));
}

/** Runs the mechanism's exchange against a broker that answers `answer` (bytes after their length, or an error). */
async function exchange(answer: Buffer | Error): Promise<{ sent: string }> {
  const sasl = mskIamSasl('eu-west-1', async () => KEY);
  let sent = '';
  const saslAuthenticate = (async ({ request, response }: Parameters<AuthenticationProviderArgs['saslAuthenticate']>[0]) => {
    sent = (await request.encode()).subarray(4).toString('utf8');
    if (answer instanceof Error) throw answer;
    const raw = Buffer.concat([Buffer.alloc(4), answer]);
    raw.writeInt32BE(answer.length);
    return response!.parse(await response!.decode(raw));
  }) as AuthenticationProviderArgs['saslAuthenticate'];
  await sasl.authenticationProvider({ host: 'b-1', port: 9098, logger: undefined as never, saslAuthenticate }).authenticate();
  return { sent };
}

describe('Amazon MSK IAM over OAUTHBEARER', () => {
  it('signs a Connect for the cluster\'s region with the credentials, and keeps the token while enough of it is left', async () => {
    let resolved = 0;
    const sasl = mskIamSasl('eu-west-1', async () => { resolved += 1; return KEY; });
    const token = await sasl.token();
    const url = signedUrl(token);
    assert.equal(url.host, 'kafka.eu-west-1.amazonaws.com');
    assert.equal(url.searchParams.get('Action'), 'kafka-cluster:Connect');
    assert.match(url.searchParams.get('X-Amz-Credential')!, /^AKIAEXAMPLEEXAMPLE01\/\d{8}\/eu-west-1\/kafka-cluster\/aws4_request$/);
    assert.equal(sasl.signedWith, KEY.accessKeyId);
    assert.equal(await sasl.token(), token);
    assert.equal(resolved, 1);
    // Credentials that end within 5 minutes give tokens that end with them: each use makes a new one.
    const expiring = mskIamSasl('eu-west-1', async () => { resolved += 1; return { ...KEY, expiration: new Date(Date.now() + 240_000) }; });
    await expiring.token();
    await expiring.token();
    assert.equal(resolved, 3);
  });

  it('sends the token as RFC 7628\'s client response, and takes an empty answer for success', async () => {
    const { sent } = await exchange(Buffer.alloc(0));
    const [header, auth, ...rest] = sent.split('\u0001');
    assert.equal(header, 'n,,');
    assert.equal(signedUrl(auth!.replace(/^auth=Bearer /, '')).searchParams.get('Action'), 'kafka-cluster:Connect');
    assert.deepEqual(rest, ['', '']);
  });

  it('reports a refusal, as a challenge or as an error code, as a SASL authentication error; a lost connection as itself', async () => {
    await assert.rejects(exchange(Buffer.from('{"status":"invalid_token"}')), {
      name: 'KafkaJSSASLAuthenticationError', message: 'SASL OAUTHBEARER: the broker refused the token: {"status":"invalid_token"}', retriable: false,
    });
    const code = Object.assign(new Error('Request is not valid given the current SASL state'), { type: 'SASL_AUTHENTICATION_FAILED' });
    await assert.rejects(exchange(code), { name: 'KafkaJSSASLAuthenticationError', message: /refused the token: Request is not valid/ });
    const lost = Object.assign(new Error('Connection closed'), { name: 'KafkaJSConnectionClosedError' });
    await assert.rejects(exchange(lost), lost);
  });

  it('says that no token could be made when the credentials cannot be found', async () => {
    const sasl = mskIamSasl('eu-west-1', async () => { throw new Error('Could not load credentials from any providers'); });
    await assert.rejects(sasl.token(), (error: Error) => error instanceof MskIamTokenError && error.message === 'Could not load credentials from any providers');
    assert.equal(sasl.signedWith, undefined);
  });
});
