import { Kafka, logLevel, type Admin, type LogEntry } from 'kafkajs';
import { basicAuthHeader, type BasicAuth } from '../services/shared/basic-auth.js';
import { saslMechanismName, type KafkaSecurity } from '../services/shared/config.js';
import { DependencyError, describeError } from '../services/shared/errors.js';
import { kafkaErrorType } from '../services/shared/kafka.js';
import { MskIamTokenError } from '../services/shared/msk-iam.js';

/** A topic a command uses: the variable that names it, and whether the command makes it when it is missing. */
export interface TopicUse {
  name: string;
  variable: string;
  creates: boolean;
}

/** The Kafka resources a command uses; what the brokers refuse of them stops it before it writes anything. */
export interface KafkaUse {
  topics: TopicUse[];
  /**
   * A topic it produces to: its idempotent producers must be let in, which takes Write on some topic (or, before
   * Kafka 3.0, IdempotentWrite on the cluster).
   */
  writes?: TopicUse;
  /** The consumer group it joins, and the variable that names it; `prefix`: a group of its own under that prefix. */
  group?: { id: string; variable: string; prefix?: string };
}

/**
 * Start-up checks: each dependency answers before anything is written anywhere. `use`: the topics and group the
 * command uses, checked for what the brokers tell without a write (a topic's Describe, and Create where it is
 * missing; the group's Describe); a topic the command does not make must exist.
 */
export async function checkKafka(brokers: string[], { security, use }: { security: KafkaSecurity; use?: KafkaUse }): Promise<void> {
  // kafkajs reports a refused group coordinator look-up as "Failed to find group coordinator": its broker pool drops
  // each broker's error. The refusal itself shows only in its debug log, where it is picked up.
  const refusals = new Set<string>();
  const logCreator = () => ({ log }: LogEntry) => {
    const type = (log.error as { type?: unknown } | undefined)?.type;
    if (typeof type === 'string' && type.endsWith('_AUTHORIZATION_FAILED')) refusals.add(type);
  };
  const kafka = new Kafka({ brokers, ...security, logLevel: logLevel.DEBUG, logCreator, connectionTimeout: 3000, retry: { retries: 2, initialRetryTime: 300 } });
  const admin = kafka.admin();
  try {
    try {
      await admin.connect();
      await admin.describeCluster();
    } catch (error) {
      throw unreachable(error, brokers, security);
    }
    if (use) await checkUse(kafka, admin, use, { brokers, security, refusals });
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

/** Why no broker could be asked: refused credentials, an untrusted certificate, or no broker at all. */
function unreachable(error: unknown, brokers: string[], security: KafkaSecurity): DependencyError {
  const { sasl } = security;
  const refused = (error as Error).name === 'KafkaJSSASLAuthenticationError';
  if (sasl && 'region' in sasl && (refused || error instanceof MskIamTokenError)) {
    const what = refused ? `of access key ${sasl.signedWith} was refused by the Kafka brokers at ${brokers.join(',')}` : 'could not be made';
    return new DependencyError('KAFKA_SASL_MECHANISM', `the aws-msk-iam token for region ${sasl.region} ${what} (${describeError(error)}): check the AWS credentials, their kafka-cluster:Connect permission, and KAFKA_AWS_REGION`, error);
  }
  if (sasl && 'username' in sasl && refused) {
    return new DependencyError('KAFKA_SASL_USERNAME', `the Kafka brokers at ${brokers.join(',')} refused the ${sasl.mechanism} credentials of "${sasl.username}" (${describeError(error)})`, error);
  }
  if (security.ssl && /certificate/i.test(describeError(error))) {
    return new DependencyError('KAFKA_SSL_CA_FILE', `the TLS certificate of the Kafka brokers at ${brokers.join(',')} is not trusted (${describeError(error)}): set KAFKA_SSL_CA_FILE to the CA that signs it`, error);
  }
  // A listener that expects SASL or TLS closes a connection that starts without it: say what was tried.
  const tried = [security.ssl ? 'TLS' : 'no TLS', sasl ? `SASL ${saslMechanismName(sasl)}` : 'no SASL'].join(', ');
  return new DependencyError('KAFKA_BROKERS', `no Kafka broker answers at ${brokers.join(',')} with ${tried} (${describeError(error)})`, error);
}

/**
 * Only what the brokers state stops the start: a refusal, or a topic the command needs and does not make. Anything
 * else (a coordinator still loading, a slow answer) is left to the command's own retries.
 */
async function checkUse(kafka: Kafka, admin: Admin, use: KafkaUse, context: { brokers: string[]; security: KafkaSecurity; refusals: Set<string> }): Promise<void> {
  const refused = (variable: string, what: string, type: string, grant: string) => new DependencyError(variable,
    `the Kafka brokers at ${context.brokers.join(',')} do not let ${principalOf(context.security)} ${what} (${type}): ${grant} (README, "Kafka ACLs", lists what each command needs)`);
  // What to grant: the ACL operation, or with aws-msk-iam the IAM action that stands for it (`aclAlso`: ACLs only).
  const iam = context.security.sasl && 'region' in context.security.sasl;
  const grant = (operation: string, action: string, on: string, aclAlso = '') => (iam ? `allow it kafka-cluster:${action} on ${on}` : `grant it ${operation} on ${on}${aclAlso}`);
  // A topic the principal may not describe is left out of the listing, as a missing one is.
  const listed = new Set(await admin.listTopics());
  for (const topic of use.topics.filter(({ name }) => !listed.has(name))) {
    const described = await admin.fetchTopicMetadata({ topics: [topic.name] }).then(() => 'exists', kafkaErrorType);
    if (described === 'TOPIC_AUTHORIZATION_FAILED') {
      throw refused(topic.variable, `describe topic ${topic.name}`, described, grant('Describe', 'DescribeTopic', 'the topic'));
    }
    if (described !== 'UNKNOWN_TOPIC_OR_PARTITION') continue;
    if (!topic.creates) {
      throw new DependencyError(topic.variable, `no topic ${topic.name} at ${context.brokers.join(',')}: nothing has produced to it yet (a \`snapshot\`, \`listen\` or \`run\` creates it)`);
    }
    const creation = await admin.createTopics({ validateOnly: true, waitForLeaders: false, topics: [{ topic: topic.name }] }).then(() => 'allowed', kafkaErrorType);
    if (creation === 'TOPIC_AUTHORIZATION_FAILED') {
      throw refused(topic.variable, `create topic ${topic.name}, which does not exist yet`, creation, grant('Create', 'CreateTopic', 'the topic', ' (or the cluster)'));
    }
  }
  if (use.writes) {
    // Asks for a producer id, as the command's producers do when they connect: it writes nothing to a topic.
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, retry: { retries: 2, initialRetryTime: 300 } });
    const admitted = await producer.connect().then(() => 'admitted', kafkaErrorType).finally(() => producer.disconnect().catch(() => undefined));
    if (admitted === 'CLUSTER_AUTHORIZATION_FAILED') {
      const { name, variable } = use.writes;
      throw refused(variable, 'write to any topic', admitted, grant('Write', 'WriteData', `topic ${name}`));
    }
  }
  if (use.group) {
    const { id, variable, prefix } = use.group;
    await admin.describeGroups([id]).catch(() => undefined);
    if (context.refusals.has('GROUP_AUTHORIZATION_FAILED')) {
      throw refused(variable, `use consumer group ${id}`, 'GROUP_AUTHORIZATION_FAILED',
        grant('Describe and Read', 'DescribeGroup and AlterGroup', prefix ? `the groups prefixed ${prefix}` : 'the group'));
    }
  }
}

/** Whom the brokers authorize, as their ACLs (or IAM policies) name it. */
function principalOf(security: KafkaSecurity): string {
  const { sasl } = security;
  if (!sasl) return 'User:ANONYMOUS (no SASL)';
  return 'region' in sasl ? `the IAM identity of access key ${sasl.signedWith}` : `User:${sasl.username}`;
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
