// A load client on grpc-js with @grpc/grpc-js-xds: node tests/support/xds_client.js TARGET.
//
// Same protocol as tests/support/xds_client.py: GRPC_XDS_BOOTSTRAP_CONFIG in the
// environment, --concurrency loops of DescribeAgent on xds:///NAME, one JSON line
// per call ({"t", "by"} or {"t", "err"}), until stdin closes or --duration passes.
// NODE_PATH points at the directory where the tests' setup installed the packages.
'use strict';

const path = require('path');
const grpc = require('@grpc/grpc-js');
const grpcXds = require('@grpc/grpc-js-xds');
const protoLoader = require('@grpc/proto-loader');

function option(name, fallback) {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

const target = process.argv[2];
const concurrency = option('--concurrency', 2);
const duration = option('--duration', 60) * 1000;
const interval = option('--interval', 0) * 1000;
const deadlineMs = option('--deadline', 5) * 1000;

grpcXds.register();
const proto = path.join(__dirname, '..', '..', 'proto', 'workflow', 'v1', 'workflow_agent.proto');
const definition = protoLoader.loadSync(proto, { keepCase: true });
const { WorkflowAgent } = grpc.loadPackageDefinition(definition).workflow.v1;
const client = new WorkflowAgent(target, grpc.credentials.createInsecure());

const end = Date.now() + duration;
let stopping = false;
process.stdin.on('end', () => { stopping = true; });
process.stdin.on('close', () => { stopping = true; });
process.stdin.resume();

function emit(record) {
  process.stdout.write(JSON.stringify(record) + '\n');
}

function loop(done) {
  if (stopping || Date.now() >= end) {
    done();
    return;
  }
  client.DescribeAgent({}, { deadline: Date.now() + deadlineMs }, (err, reply) => {
    const t = Date.now() / 1000;
    if (err) {
      emit({ t, err: grpc.status[err.code] || String(err.code), details: err.details });
    } else {
      emit({ t, by: reply.instance_id });
    }
    setTimeout(() => loop(done), interval);
  });
}

let running = concurrency;
for (let i = 0; i < concurrency; i++) {
  loop(() => {
    running -= 1;
    if (running === 0) {
      client.close();
      process.exit(0);
    }
  });
}
