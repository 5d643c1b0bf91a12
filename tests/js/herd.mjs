// Hold many phoenix.js sockets for bench/herd.py: the reference client running its own
// reconnect schedule (or capped_jitter's, restated here in JavaScript), to compare its herd
// with the course client's on the same machine.
//
// argv: url count schedule ("default" or "capped:<cap s>").  Each socket joins
// "room:herd"; after all have joined it prints "ready".  From then on, every reopen prints
// "open <attempt> <open>" in seconds of CLOCK_MONOTONIC (process.hrtime, the clock Python's
// time.monotonic() reads), where <attempt> is when that socket constructed its WebSocket.
// Closing stdin disconnects everything and exits.
import {Socket} from "phoenix"
import WebSocket from "ws"

const [url, countArg, scheduleArg] = process.argv.slice(2)
const count = Number(countArg)
const now = () => Number(process.hrtime.bigint()) / 1e9

function schedule(){
  if(scheduleArg === "default"){ return undefined } // phoenix.js's own reconnectAfterMs
  const cap = Number(scheduleArg.split(":")[1]) * 1000
  // capped_jitter's shape: Phoenix's first try (10 ms), one phase in [0, cap], then cap
  return (tries) => tries <= 1 ? 10 : tries === 2 ? Math.random() * cap : cap
}

let joined = 0
let ready = false
const sockets = []
for(let n = 0; n < count; n++){
  let attempt = 0
  class Stamped extends WebSocket {
    constructor(address, protocols){ attempt = now(); super(address, protocols) }
  }
  const opts = {transport: Stamped}
  const reconnectAfterMs = schedule()
  if(reconnectAfterMs){ opts.reconnectAfterMs = reconnectAfterMs }
  const socket = new Socket(url, opts)
  let opens = 0
  socket.onOpen(() => {
    opens += 1
    if(opens > 1 && ready){ process.stdout.write(`open ${attempt} ${now()}\n`) }
  })
  socket.connect()
  socket.channel("room:herd", {}).join().receive("ok", () => {
    joined += 1
    if(joined === count){ ready = true; process.stdout.write("ready\n") }
  })
  sockets.push(socket)
}
process.stdin.on("end", () => { sockets.forEach(s => s.disconnect()); process.exit(0) })
process.stdin.resume()
