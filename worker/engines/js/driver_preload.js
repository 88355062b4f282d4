// Preloaded into Playwright's driver (node --require, see worker/engines/driver_signals.py).
//
// A SIGTERM or SIGHUP sent to the worker's whole process group (systemd's default
// KillMode=control-group, `kill -TERM -PGID`, a terminal closing) reaches the driver too.
// Node's default would end it at once, and Chromium with it, killing the captures the
// worker's warm shutdown lets finish. The driver ignores them instead: the worker closes
// the browser and the driver when its captures are done, and a worker that dies closes
// the driver's stdin, which ends it.
process.on("SIGTERM", () => {});
process.on("SIGHUP", () => {});
