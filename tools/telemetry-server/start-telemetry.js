// Starts the real Genkit telemetry server (npm @genkit-ai/telemetry-server) on 127.0.0.1.
// Usage: node start-telemetry.js <port> <store-root>. Prints "Telemetry API running on ..." when ready.
const path = require('path');
const { startTelemetryServer, LocalFileTraceStore, LocalFileLogStore } =
  require(require.resolve('@genkit-ai/telemetry-server', { paths: [__dirname] }));

const port = Number(process.argv[2] || 4033);
const root = path.resolve(process.argv[3] || path.join(__dirname, 'store'));
startTelemetryServer({
  port,
  host: '127.0.0.1',
  traceStore: new LocalFileTraceStore({ storeRoot: root, indexRoot: root }),
  logStore: new LocalFileLogStore({ storeRoot: root, indexRoot: root }),
});
process.on('SIGTERM', () => process.exit(0));
