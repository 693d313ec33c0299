import { Kafka, logLevel } from 'kafkajs';
import { basicAuthHeader, type BasicAuth } from '../services/shared/basic-auth.js';
import { saslMechanismName, type KafkaSecurity } from '../services/shared/config.js';
import { DependencyError, describeError } from '../services/shared/errors.js';
import { MskIamTokenError } from '../services/shared/msk-iam.js';

/**
 * Start-up checks: each dependency answers before anything is written anywhere. `topic`: for a command that only
 * reads it, the topic must exist.
 */
export async function checkKafka(brokers: string[], { security, topic }: { security: KafkaSecurity; topic?: string }): Promise<void> {
  const admin = new Kafka({ brokers, ...security, logLevel: logLevel.NOTHING, connectionTimeout: 3000, retry: { retries: 2, initialRetryTime: 300 } }).admin();
  let topics: string[];
  try {
    await admin.connect();
    await admin.describeCluster();
    topics = topic ? await admin.listTopics() : [];
  } catch (error) {
    const { sasl } = security;
    const refused = (error as Error).name === 'KafkaJSSASLAuthenticationError';
    if (sasl && 'region' in sasl && (refused || error instanceof MskIamTokenError)) {
      const what = refused ? `of access key ${sasl.signedWith} was refused by the Kafka brokers at ${brokers.join(',')}` : 'could not be made';
      throw new DependencyError('KAFKA_SASL_MECHANISM', `the aws-msk-iam token for region ${sasl.region} ${what} (${describeError(error)}): check the AWS credentials, their kafka-cluster:Connect permission, and KAFKA_AWS_REGION`, error);
    }
    if (sasl && 'username' in sasl && refused) {
      throw new DependencyError('KAFKA_SASL_USERNAME', `the Kafka brokers at ${brokers.join(',')} refused the ${sasl.mechanism} credentials of "${sasl.username}" (${describeError(error)})`, error);
    }
    if (security.ssl && /certificate/i.test(describeError(error))) {
      throw new DependencyError('KAFKA_SSL_CA_FILE', `the TLS certificate of the Kafka brokers at ${brokers.join(',')} is not trusted (${describeError(error)}): set KAFKA_SSL_CA_FILE to the CA that signs it`, error);
    }
    // A listener that expects SASL or TLS closes a connection that starts without it: say what was tried.
    const tried = [security.ssl ? 'TLS' : 'no TLS', sasl ? `SASL ${saslMechanismName(sasl)}` : 'no SASL'].join(', ');
    throw new DependencyError('KAFKA_BROKERS', `no Kafka broker answers at ${brokers.join(',')} with ${tried} (${describeError(error)})`, error);
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
  if (topic && !topics.includes(topic)) {
    throw new DependencyError('APIGW_TOPIC', `no topic ${topic} at ${brokers.join(',')}: nothing has produced to it yet (a \`snapshot\`, \`listen\` or \`run\` creates it)`);
  }
}

export async function checkRegistry(url: string, auth?: BasicAuth): Promise<void> {
  let response: Response;
  try {
    response = await fetch(`${url}/subjects`, { headers: basicAuthHeader(auth), signal: AbortSignal.timeout(5000) });
  } catch (error) {
    const cause = (error as Error & { cause?: Error }).cause;
    throw new DependencyError('SCHEMA_REGISTRY_URL', `no schema registry answers at ${url} (${describeError(cause ?? error)})`, error);
  }
  if (response.status === 401 || response.status === 403) {
    const which = auth ? `the credentials of "${auth.username}"` : 'a request without credentials (give them as https://user:password@host)';
    throw new DependencyError('SCHEMA_REGISTRY_URL', `the registry at ${url} refused ${which}: HTTP ${response.status}`);
  }
  if (!response.ok) throw new DependencyError('SCHEMA_REGISTRY_URL', `${url}/subjects answered HTTP ${response.status}; expected a Confluent-compatible registry`);
}
