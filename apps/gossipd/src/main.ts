import { PROTOCOL_VERSION } from '@gossip/protocol';

const VERSION = '0.1.0';

const args = process.argv.slice(2);
if (args.includes('--version')) {
  process.stdout.write(`gossipd ${VERSION} (protocol ${PROTOCOL_VERSION})\n`);
} else {
  process.stderr.write(
    'gossipd: the server is not built yet. This release holds the protocol package only;\n' +
      'the store and the server land next (see the README).\n',
  );
  process.exitCode = 1;
}
