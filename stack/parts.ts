import { spawnSync } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import kafkajs, { Kafka, logLevel, type Admin, type Mechanism, type SASLOptions } from 'kafkajs';
import { mskIamSasl } from '../services/shared/msk-iam.js';
import { APICURIO_VERSION, CACHE_DIR, KAFKA_VERSION, MOTO_VERSION, PROJECT_ROOT, RUN_DIR } from './layout.js';
import { httpOk, portOpen, run, startDetached } from './processes.js';

/**
 * A random cluster id as Kafka makes them (its Uuid.randomUuid): the base64url of a UUID, never one starting with
 * '-', which the storage tool's argument parser takes for an option (one id in 64: a stack start failed on it).
 */
function kafkaClusterId(): string {
  for (;;) {
    const id = Buffer.from(randomUUID().replaceAll('-', ''), 'hex').toString('base64url');
    if (!id.startsWith('-')) return id;
  }
}

export interface StackPart {
  name: string;
  port: number;
  /** Where a client reaches it. */
  endpoint: string;
  installed(): boolean;
  install(say: (line: string) => void): void;
  /** Starts it detached and returns its pid; `say` tells what it leaves out. */
  start(say: (line: string) => void): number;
  answers(): Promise<boolean>;
  /** For a part that answers: what it lacks that this checkout's start gives it (one started by an older checkout). */
  lacks?(): Promise<string | undefined>;
  startTimeoutMs: number;
  logFile: string;
  pidFile: string;
}

const MAVEN_DEPENDENCY_PLUGIN = 'org.apache.maven.plugins:maven-dependency-plugin:3.8.1';
// Apicurio's parent POM of 3.0.9 is not on Maven Central; 2.8's `copy` fetches the zip without reading it.
const MAVEN_COPY_PLUGIN = 'org.apache.maven.plugins:maven-dependency-plugin:2.8';

/** The file a finished install or build leaves in its directory: one cut short leaves none, and is done again. */
function completedStamp(dir: string) {
  return join(dir, '.complete');
}

/**
 * The local broker's SASL user, on its SASL listener (APIGW_STACK_KAFKA_SASL_PORT), for PLAIN, SCRAM-SHA-256 and
 * SCRAM-SHA-512: for trying and testing KAFKA_SASL_*.
 */
export const STACK_SASL_USER = { username: 'apigw', password: 'apigw-secret' };

const SCRAM_MECHANISMS = ['SCRAM-SHA-256', 'SCRAM-SHA-512'];

/**
 * The local broker's stand-in for Amazon MSK's IAM access control (OAUTHBEARER on the SASL listener,
 * `stack/kafka/msk-iam`), for trying and testing KAFKA_SASL_MECHANISM=aws-msk-iam: the cluster's region and the one
 * AWS access key it takes (the emulator takes it too). Its sessions last `STACK_MSK_IAM_SESSION_MS`, so clients
 * re-authenticate within a test's time.
 */
export const STACK_MSK_IAM = { region: 'us-east-1', accessKeyId: 'AKIAAPIGWSTREAMSTACK', secretAccessKey: 'apigw-stream-stack-msk-secret' };
export const STACK_MSK_IAM_SESSION_MS = 15_000;

/** The stand-in is compiled at start, which takes a JDK; a machine with only a Java runtime runs the broker without it. */
const hasJavac = () => spawnSync('javac', ['-version'], { stdio: 'ignore' }).status === 0;

/** Compiles the stand-in's validator against the broker's jars, once per version of its source; returns its classes' directory. */
function mskIamValidatorClasses(home: string, classpath: string): string {
  const source = join(PROJECT_ROOT, 'stack/kafka/msk-iam/MskIamTokenValidator.java');
  const version = createHash('sha256').update(readFileSync(source)).digest('hex').slice(0, 12);
  const classes = join(home, 'msk-iam', version);
  if (!existsSync(completedStamp(classes))) {
    rmSync(join(home, 'msk-iam'), { recursive: true, force: true });
    run('javac', ['-d', classes, '-cp', classpath, source]);
    writeFileSync(completedStamp(classes), new Date().toISOString());
  }
  return classes;
}

const kafkaDataDir = (port: number) => join(RUN_DIR, `kafka-${port}`);

/** The CA that signs the certificate of the local broker's TLS listener (APIGW_STACK_KAFKA_SSL_PORT), for KAFKA_SSL_CA_FILE. */
const stackTlsDir = (port: number) => join(kafkaDataDir(port), 'tls');
export const stackKafkaCaFile = (port: number) => join(stackTlsDir(port), 'ca.pem');

/** The key and certificate the stack's CA signs for 127.0.0.1 (the brokers' TLS listener's), PEM files, for other test servers. */
export const stackCertificate = (port: number) => ({ keyFile: join(stackTlsDir(port), 'broker.key'), certFile: join(stackTlsDir(port), 'broker.pem') });

/**
 * A CA of the stack's own and a certificate it signs for 127.0.0.1, made once: the TLS listener's key store is the
 * broker's PKCS#8 key followed by its certificate, in PEM.
 */
function makeBrokerCertificate(dir: string): string {
  const keyStore = join(dir, 'broker-keystore.pem');
  if (existsSync(keyStore)) return keyStore;
  mkdirSync(dir, { recursive: true });
  const at = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => run('openssl', args);
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', at('ca.key'), '-out', at('ca.pem'), '-days', '3650', '-subj', '/CN=apigw-stream local stack CA');
  openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', at('broker.key'), '-out', at('broker.csr'), '-subj', '/CN=127.0.0.1');
  writeFileSync(at('broker.ext'), 'subjectAltName=IP:127.0.0.1\n');
  openssl('x509', '-req', '-in', at('broker.csr'), '-CA', at('ca.pem'), '-CAkey', at('ca.key'), '-CAcreateserial', '-out', at('broker.pem'), '-days', '3650', '-extfile', at('broker.ext'));
  openssl('pkcs8', '-topk8', '-nocrypt', '-in', at('broker.key'), '-out', at('broker.pk8'));
  writeFileSync(keyStore, readFileSync(at('broker.pk8'), 'utf8') + readFileSync(at('broker.pem'), 'utf8'));
  return keyStore;
}

export function kafkaPart(ports: { kafka: number; kafkaController: number; kafkaSasl: number; kafkaSsl: number; kafkaSaslSsl: number }): StackPart {
  const { kafka: port, kafkaController: controllerPort, kafkaSasl: saslPort, kafkaSsl: sslPort, kafkaSaslSsl: saslSslPort } = ports;
  const home = join(CACHE_DIR, `kafka-${KAFKA_VERSION}`);
  const libs = join(home, 'libs');
  const dataDir = kafkaDataDir(port);
  const classpath = `${libs}/*`;
  const java = (args: string[], cp = classpath) => ['-Xms256m', '-Xmx768m', `-Dlog4j2.configurationFile=${join(PROJECT_ROOT, 'stack/kafka/log4j2.properties')}`, '-cp', cp, ...args];
  return {
    name: 'kafka',
    port,
    endpoint: `127.0.0.1:${port}`,
    startTimeoutMs: 90_000,
    logFile: join(RUN_DIR, `kafka-${port}.log`),
    pidFile: join(RUN_DIR, `kafka-${port}.pid`),
    installed: () => existsSync(completedStamp(libs)),
    install(say) {
      say(`installing Apache Kafka ${KAFKA_VERSION} jars from Maven Central (once)`);
      rmSync(libs, { recursive: true, force: true });
      run('mvn', ['-B', '-q', '-f', join(PROJECT_ROOT, 'stack/kafka/pom.xml'), `${MAVEN_DEPENDENCY_PLUGIN}:copy-dependencies`,
        `-Dkafka.version=${KAFKA_VERSION}`, `-DoutputDirectory=${libs}`, '-DincludeScope=runtime']);
      writeFileSync(completedStamp(libs), new Date().toISOString());
    },
    start(say) {
      const properties = join(dataDir, 'server.properties');
      const logs = join(dataDir, 'logs');
      mkdirSync(dataDir, { recursive: true });
      const keyStore = makeBrokerCertificate(stackTlsDir(port));
      const validator = hasJavac() ? mskIamValidatorClasses(home, classpath) : undefined;
      if (!validator) say('kafka: no javac (a JDK) on the PATH: its SASL listener starts without the stand-in for Amazon MSK\'s IAM check, so KAFKA_SASL_MECHANISM=aws-msk-iam cannot be tried against it');
      // The same mechanisms on both SASL listeners, without TLS and with it (as MSK takes IAM: over TLS only).
      const saslListener = (listener: string) => [
        `listener.name.${listener}.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_${STACK_SASL_USER.username}="${STACK_SASL_USER.password}";`,
        ...SCRAM_MECHANISMS.map((mechanism) => `listener.name.${listener}.${mechanism.toLowerCase()}.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;`),
        ...(validator ? [
          `listener.name.${listener}.oauthbearer.sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredLoginStringClaim_sub="broker" region="${STACK_MSK_IAM.region}" accessKeyId="${STACK_MSK_IAM.accessKeyId}" secretAccessKey="${STACK_MSK_IAM.secretAccessKey}";`,
          `listener.name.${listener}.oauthbearer.sasl.server.callback.handler.class=apigwstream.stack.MskIamTokenValidator`,
          `listener.name.${listener}.oauthbearer.connections.max.reauth.ms=${STACK_MSK_IAM_SESSION_MS}`,
        ] : []),
      ];
      writeFileSync(properties, [
        'process.roles=broker,controller',
        'node.id=1',
        `controller.quorum.voters=1@127.0.0.1:${controllerPort}`,
        `listeners=PLAINTEXT://127.0.0.1:${port},SASL_PLAINTEXT://127.0.0.1:${saslPort},SSL://127.0.0.1:${sslPort},SASL_SSL://127.0.0.1:${saslSslPort},CONTROLLER://127.0.0.1:${controllerPort}`,
        `advertised.listeners=PLAINTEXT://127.0.0.1:${port},SASL_PLAINTEXT://127.0.0.1:${saslPort},SSL://127.0.0.1:${sslPort},SASL_SSL://127.0.0.1:${saslSslPort}`,
        'controller.listener.names=CONTROLLER',
        'inter.broker.listener.name=PLAINTEXT',
        'listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SSL:SSL,SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT',
        'ssl.keystore.type=PEM',
        `ssl.keystore.location=${keyStore}`,
        `sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512${validator ? ',OAUTHBEARER' : ''}`,
        ...saslListener('sasl_plaintext'),
        ...saslListener('sasl_ssl'),
        `log.dirs=${logs}`,
        'num.partitions=1',
        'offsets.topic.replication.factor=1',
        'offsets.topic.num.partitions=10',
        'transaction.state.log.replication.factor=1',
        'transaction.state.log.min.isr=1',
        'transaction.state.log.num.partitions=10',
        'group.initial.rebalance.delay.ms=0',
        'auto.create.topics.enable=false',
        'delete.topic.enable=true',
        // ACLs, for trying a principal that may not do everything: what no ACL names, everyone may do, and the
        // listeners without SASL (the broker's own, the controller's, the tests' admin) may do anything.
        'authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer',
        'allow.everyone.if.no.acl.found=true',
        'super.users=User:ANONYMOUS',
        '',
      ].join('\n'));
      // SCRAM credentials live in the cluster's metadata, which the broker's own jars write only when formatting:
      // a log directory formatted before the stack had them (no stamp) is formatted again. It holds only what tests
      // and the demo made, which they make again.
      const scramStamp = join(logs, '.scram-users');
      if (existsSync(join(logs, 'meta.properties')) && !existsSync(scramStamp)) rmSync(logs, { recursive: true, force: true });
      if (!existsSync(join(logs, 'meta.properties'))) {
        const clusterId = kafkaClusterId();
        const scramUsers = SCRAM_MECHANISMS.flatMap((mechanism) => ['--add-scram', `${mechanism}=[name=${STACK_SASL_USER.username},password=${STACK_SASL_USER.password}]`]);
        run('java', java(['kafka.tools.StorageTool', 'format', '-t', clusterId, '-c', properties, ...scramUsers]));
        writeFileSync(scramStamp, new Date().toISOString());
      }
      return startDetached('java', java(['kafka.Kafka', properties], validator ? `${classpath}:${validator}` : classpath), { logFile: this.logFile, pidFile: this.pidFile });
    },
    async lacks() {
      const closed: string[] = [];
      for (const listener of [{ name: 'SASL', port: saslPort }, { name: 'TLS', port: sslPort }, { name: 'SASL over TLS', port: saslSslPort }]) {
        if (!(await portOpen(listener.port))) closed.push(`${listener.name} listener on ${listener.port}`);
      }
      // A broker started by an older stack takes PLAIN only.
      if (closed.length === 0 && !(await brokerAnswers(saslPort, { mechanism: 'scram-sha-512', ...STACK_SASL_USER }))) closed.push(`SCRAM user ${STACK_SASL_USER.username} on ${saslPort}`);
      if (closed.length === 0 && hasJavac() && !(await brokerAnswers(saslPort, mskIamSasl(STACK_MSK_IAM.region, async () => STACK_MSK_IAM)))) closed.push(`MSK IAM stand-in on ${saslPort}`);
      // A broker without an authorizer answers a request for its ACLs with SECURITY_DISABLED.
      if (closed.length === 0 && !(await brokerAnswers(port, undefined, listAcls))) closed.push('authorizer (ACLs)');
      return closed.length === 0 ? undefined : `no ${closed.join(' and no ')}`;
    },
    answers: async () => (await portOpen(port)) && brokerAnswers(port),
  };
}

// kafkajs's CommonJS exports, past what Node's named-export detection finds in its index.
const { AclResourceTypes, AclOperationTypes, AclPermissionTypes, ResourcePatternTypes } = kafkajs;
const listAcls = (admin: Admin) => admin.describeAcls({
  resourceType: AclResourceTypes.ANY, resourcePatternType: ResourcePatternTypes.ANY, operation: AclOperationTypes.ANY, permissionType: AclPermissionTypes.ANY,
});

/** Whether a broker answers `request` (a metadata request by default) on `port` (with `sasl`, once it has authenticated). */
async function brokerAnswers(port: number, sasl?: SASLOptions | Mechanism, request: (admin: Admin) => Promise<unknown> = (admin) => admin.describeCluster()): Promise<boolean> {
  const admin = new Kafka({ brokers: [`127.0.0.1:${port}`], sasl, logLevel: logLevel.NOTHING, retry: { retries: 0 }, connectionTimeout: 2000 }).admin();
  try {
    await admin.connect();
    await request(admin);
    return true;
  } catch {
    return false;
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

export function registryPart(port: number): StackPart {
  const home = join(CACHE_DIR, `apicurio-registry-${APICURIO_VERSION}`);
  const runnerJar = () => readdirSync(home).find((name) => name.endsWith('-runner.jar'));
  return {
    name: 'schema-registry',
    port,
    endpoint: `http://127.0.0.1:${port}/apis/ccompat/v7`,
    startTimeoutMs: 120_000,
    logFile: join(RUN_DIR, `schema-registry-${port}.log`),
    pidFile: join(RUN_DIR, `schema-registry-${port}.pid`),
    installed: () => existsSync(completedStamp(home)),
    install(say) {
      say(`installing Apicurio Registry ${APICURIO_VERSION} from Maven Central (once)`);
      const download = join(CACHE_DIR, 'downloads');
      rmSync(home, { recursive: true, force: true });
      run('mvn', ['-B', '-q', `${MAVEN_COPY_PLUGIN}:copy`, `-Dartifact=io.apicurio:apicurio-registry-app:${APICURIO_VERSION}:zip:all`, `-DoutputDirectory=${download}`]);
      run('python3', ['-m', 'zipfile', '-e', join(download, `apicurio-registry-app-${APICURIO_VERSION}-all.zip`), home]);
      writeFileSync(completedStamp(home), new Date().toISOString());
    },
    start() {
      return startDetached('java', ['-Xms128m', '-Xmx512m', '-jar', join(home, runnerJar()!)], {
        cwd: home,
        env: { QUARKUS_HTTP_PORT: String(port), QUARKUS_HTTP_HOST: '127.0.0.1', QUARKUS_LOG_LEVEL: 'WARN' },
        logFile: this.logFile,
        pidFile: this.pidFile,
      });
    },
    answers: () => httpOk(`http://127.0.0.1:${port}/apis/ccompat/v7/subjects`),
  };
}

export function motoPart(port: number): StackPart {
  const venv = join(CACHE_DIR, 'venv');
  const bin = (name: string) => join(venv, 'bin', name);
  return {
    name: 'moto',
    port,
    endpoint: `http://127.0.0.1:${port}`,
    startTimeoutMs: 60_000,
    logFile: join(RUN_DIR, `moto-${port}.log`),
    pidFile: join(RUN_DIR, `moto-${port}.pid`),
    installed: () => existsSync(join(venv, `.moto-${MOTO_VERSION}`)),
    install(say) {
      say(`installing moto ${MOTO_VERSION} (server mode) from PyPI into ${venv} (once)`);
      run('python3', ['-m', 'venv', venv]);
      run(bin('pip'), ['install', '--quiet', '--disable-pip-version-check', `moto[server]==${MOTO_VERSION}`]);
      writeFileSync(join(venv, `.moto-${MOTO_VERSION}`), new Date().toISOString());
    },
    start() {
      return startDetached(bin('moto_server'), ['-H', '127.0.0.1', '-p', String(port)], { logFile: this.logFile, pidFile: this.pidFile });
    },
    answers: () => httpOk(`http://127.0.0.1:${port}/moto-api/`),
  };
}
