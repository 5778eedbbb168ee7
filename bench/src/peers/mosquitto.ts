/**
 * mosquitto: retained messages, QoS 1, persistence on. Driven by MQTT.js (protocol 4,
 * MQTT 3.1.1) over a socket with Nagle off: MQTT.js leaves it on, which costs tens of ms
 * at p99. One topic per id under `gossip/`; W1's ack is the PUBACK.
 */
import { writeFile } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { type IClientOptions, MqttClient } from 'mqtt';
import { asBuffer, deferred, type Publisher } from '../publish.js';
import {
  binaryVersion,
  findBinary,
  freePort,
  HOST,
  INSTALL_HINT,
  Proc,
  packageVersion,
  type Server,
  type System,
} from './common.js';

const TOPIC = 'gossip';

const CONF = (port: number, dir: string) => `# written by the gossip peer benchmark
# run as whoever runs the benchmark (as root, mosquitto would switch to user mosquitto)
user ${userInfo().username}
listener ${port} ${HOST}
allow_anonymous true
persistence true
persistence_location ${dir}/
persistence_file mosquitto.db
# save the in-memory state (retained messages) every second, and at shutdown
autosave_interval 1
# no cap on the messages queued or in flight to one client: with the defaults (1000, 20) a
# QoS 1 catch-up of 20 k retained messages silently stops near 1 000
max_queued_messages 0
max_inflight_messages 0
set_tcp_nodelay true
log_dest stderr
log_type error
log_type warning
`;

const DESCRIBE =
  'mosquitto -c mosquitto.conf: persistence true, autosave_interval 1 (the whole state is written every second and at shutdown; ' +
  'acks are not held for a write), max_queued_messages 0, max_inflight_messages 0, set_tcp_nodelay true, ' +
  'listener <port> 127.0.0.1; publish QoS 1 retain=true to gossip/<id>, subscribers QoS 1 to gossip/#';

async function client(port: number): Promise<MqttClient> {
  const opts: IClientOptions = {
    protocolVersion: 4,
    clean: true,
    keepalive: 60,
    reconnectPeriod: 0,
    connectTimeout: 10_000,
  };
  // MQTT.js takes a stream builder: ours turns Nagle off before the first byte is written
  const c = new MqttClient(() => createConnection({ host: HOST, port, noDelay: true }), opts);
  const ready = deferred();
  c.once('connect', () => ready.resolve());
  c.once('error', (e) => ready.reject(e));
  c.once('close', () => ready.reject(new Error('mqtt connection closed')));
  await ready.promise;
  return c;
}

const clientName = () => `mqtt (MQTT.js) ${packageVersion('mqtt')}`;

export function mosquitto(): System {
  const bin = findBinary('mosquitto', 'GOSSIP_PEERS_MOSQUITTO');
  return {
    name: 'mosquitto',
    peer: true,
    describe: DESCRIBE,
    client: clientName,
    missing: () => (bin ? null : `mosquitto not found; install it with: ${INSTALL_HINT}`),
    versions: () => `${binaryVersion(bin as string, ['-h'])}, ${clientName()}`,

    async start(dataDir: string): Promise<Server> {
      const port = await freePort();
      const conf = join(dataDir, 'mosquitto.conf');
      await writeFile(conf, CONF(port, dataDir));
      return Proc.serve('mosquitto', bin as string, ['-c', conf], port);
    },

    async publisher(port: number): Promise<Publisher> {
      const c = await client(port);
      const pub: Publisher = {
        send(id, data) {
          c.publish(`${TOPIC}/${id}`, asBuffer(data), { qos: 1, retain: true }, (err) => {
            if (err) pub.onError(err);
            else pub.onAck(1);
          });
        },
        flush: () => undefined, // MQTT.js corks the socket and writes on the next tick
        onAck: () => undefined,
        onError: () => undefined,
        close: () => c.endAsync(true),
      };
      c.on('error', (e) => pub.onError(e));
      return pub;
    },

    async subscribe(port, onData) {
      const c = await client(port);
      c.on('message', (_topic, payload) => onData(payload));
      await c.subscribeAsync(`${TOPIC}/#`, { qos: 1 });
      return { close: () => c.endAsync(true) };
    },

    async catchUp(port, expected) {
      const c = await client(port);
      try {
        let count = 0;
        const done = deferred();
        c.on('message', (_topic, _payload, packet) => {
          if (packet.retain && ++count === expected) done.resolve();
        });
        c.on('error', (e) => done.reject(e));
        await c.subscribeAsync(`${TOPIC}/#`, { qos: 1 });
        await done.promise;
        return count;
      } finally {
        await c.endAsync(true);
      }
    },
  };
}
