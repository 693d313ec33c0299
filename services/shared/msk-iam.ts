import type { generateAuthTokenFromCredentialsProvider } from 'aws-msk-iam-sasl-signer-js';
import kafkajs, { type AuthenticationProviderArgs, type Authenticator } from 'kafkajs';

type CredentialsProvider = Parameters<typeof generateAuthTokenFromCredentialsProvider>[0]['awsCredentialsProvider'];

/** A token is made again once less than this is left of it: a session it starts lasts at most what is left. */
const RENEW_BEFORE_MS = 5 * 60_000;

/**
 * kafkajs's SASL options for Amazon MSK's IAM access control (the only access MSK Serverless takes): connections
 * authenticate, and re-authenticate before their sessions end, over OAUTHBEARER with a token that AWS's signer
 * library makes from the AWS credentials (the SDK's default chain, unless given) for the cluster's region, valid for
 * 15 minutes.
 */
export interface MskIamSasl {
  mechanism: 'oauthbearer';
  authenticationProvider: (args: AuthenticationProviderArgs) => Authenticator;
  /** A token, made again once less than 5 minutes are left of the last. */
  token: () => Promise<string>;
  /** The cluster's region, which tokens are signed for. */
  region: string;
  /** The access key id of the last token made, for saying whose a refused token was. */
  signedWith?: string;
}

/** No token could be made: no AWS credentials were found, or they could not be read. */
export class MskIamTokenError extends Error {
  override name = 'MskIamTokenError';
}

export function mskIamSasl(region: string, credentials?: CredentialsProvider): MskIamSasl {
  let provider = credentials;
  let last: { token: string; expiryTime: number } | undefined;
  const sasl: MskIamSasl = {
    mechanism: 'oauthbearer',
    region,
    authenticationProvider: ({ saslAuthenticate }) => ({ authenticate: async () => authenticate(saslAuthenticate, await sasl.token()) }),
    async token() {
      if (last && last.expiryTime - Date.now() > RENEW_BEFORE_MS) return last.token;
      try {
        // Loaded on first use: the signer brings the AWS SDK's credential chain, which most commands never need.
        const { generateAuthTokenFromCredentialsProvider: sign } = await import('aws-msk-iam-sasl-signer-js');
        provider ??= (await import('@aws-sdk/credential-providers')).fromNodeProviderChain();
        const resolve = provider;
        last = await sign({
          region,
          awsCredentialsProvider: async () => {
            const identity = await resolve();
            sasl.signedWith = identity.accessKeyId;
            return identity;
          },
        });
      } catch (error) {
        throw new MskIamTokenError((error as Error).message, { cause: error });
      }
      return last.token;
    },
  };
  return sasl;
}

// kafkajs's types give its error classes no constructor arguments; they take a message. Non-retriable: a refused
// token is not tried again and again.
const SaslAuthenticationError = kafkajs.KafkaJSSASLAuthenticationError as unknown as new (message: string) => Error;

/** A length-prefixed byte string, as SaslAuthenticate carries its bytes. */
function withLength(bytes: Buffer): Buffer {
  const prefix = Buffer.alloc(4);
  prefix.writeInt32BE(bytes.length);
  return Buffer.concat([prefix, bytes]);
}

/**
 * OAUTHBEARER's one exchange (RFC 7628): the token goes in a client response. A broker that refuses it answers with a
 * challenge, its error as JSON, where one that takes it answers nothing (Apache Kafka's server; the Java client and
 * Sarama, IBM/sarama#1428, read it so). kafkajs's own OAUTHBEARER ignores that answer, so a refused token looked
 * accepted and the broker then closed the connection: "No brokers in the broker pool", saying nothing of the token.
 * A broker that answers a refusal with an error code instead is reported the same way.
 */
async function authenticate(saslAuthenticate: AuthenticationProviderArgs['saslAuthenticate'], token: string): Promise<void> {
  let challenge: Buffer | void;
  try {
    challenge = await saslAuthenticate<Buffer>({
      request: { encode: () => withLength(Buffer.from(`n,,\u0001auth=Bearer ${token}\u0001\u0001`)) },
      response: { decode: (raw) => raw.subarray(4), parse: (bytes) => bytes },
    });
  } catch (error) {
    // A connection lost on the way stays what it is, for kafkajs to retry.
    if ((error as { type?: string }).type !== 'SASL_AUTHENTICATION_FAILED') throw error;
    throw new SaslAuthenticationError(`SASL OAUTHBEARER: the broker refused the token: ${(error as Error).message}`);
  }
  if (challenge && challenge.length > 0) {
    throw new SaslAuthenticationError(`SASL OAUTHBEARER: the broker refused the token: ${challenge.toString('utf8')}`);
  }
}
