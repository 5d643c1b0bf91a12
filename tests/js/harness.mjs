// Drive the official phoenix.js client from a test, one JSON line at a time.
//
// Theory of operation: the test writes commands to stdin as JSON lines and reads
// observations from stdout as JSON lines. Every observation carries `t` (ms since the
// harness started) and `kind`. Sockets and channels are named by the test ("a", "c1")
// so several of each can live in one process. The real phoenix.js Socket is used with
// `transport` set to a subclass of ws.WebSocket (Node 20 has no global WebSocket, and
// phoenix.js would silently fall back to LongPoll), which reports every frame it sends.
// Closing stdin ends the harness, so a test that dies never leaves node running.
//
// Commands ({"cmd": ...}):
//   socket   {id, url, params?, opts?: {timeout, heartbeatIntervalMs, authToken,
//             reconnectAfterMs: [ms...], rejoinAfterMs: [ms...], origin}}  (lists: last value
//             repeats; `origin` is not a phoenix.js option: the harness makes ws send that
//             Origin header, as a browser page would)
//   connect  {socket}            disconnect {socket, code?, reason?}
//   channel  {socket, id, topic, params?}   join {chan}   leave {chan}
//   on       {chan, event}       push {chan, event, payload? | binary? (hex), timeout?, tag?}
//   state    {}                  exit {}
// Binary payloads (ArrayBuffer) appear in observations as {"binary": "<hex>"}.
// Any command may carry `ack` (any JSON value), echoed as {"kind":"ack","ack":...} once run.
//
// Observations (kind): ready, ack, open, close {code, reason, wasClean}, error {message},
// sent {frame}, recv {frame}, join {status, response, join_ref}, chan_error {reason},
// chan_close {reason}, event {event, payload, join_ref}, reply {tag, status, response},
// leave {status}, disconnected {socket}, state {sockets}, harness_error {message, line}.
// Socket-level lines carry `socket`, channel-level lines `chan`.

import readline from "node:readline"
import {performance} from "node:perf_hooks"
import {Socket} from "phoenix"
import WebSocket from "ws"

const sockets = new Map()
const channels = new Map()

function emit(kind, fields = {}){
  const line = {t: Math.round(performance.now() * 10) / 10, kind, ...fields}
  process.stdout.write(JSON.stringify(line) + "\n")
}

// A list of delays becomes a phoenix.js `tries -> ms` function; the last value repeats.
function schedule(list){
  if(!Array.isArray(list) || list.length === 0){ return undefined }
  return tries => list[Math.min(tries, list.length) - 1]
}

// ArrayBuffers (binary payloads) are not JSON: report them as {binary: "<hex>"}.
function plain(value){
  if(value instanceof ArrayBuffer){ return {binary: Buffer.from(value).toString("hex")} }
  return value ?? null
}

function decodeFrame(data){
  if(typeof data !== "string"){ return {binary: Buffer.from(data).toString("hex")} }
  try { return JSON.parse(data) } catch { return {text: data} }
}

function transportFor(socketId, origin){
  // Reports each frame as phoenix.js hands it to the wire, heartbeats included.
  return class RecordingWebSocket extends WebSocket {
    constructor(url, protocols){
      super(url, protocols, origin ? {origin} : undefined)
    }
    send(data, ...rest){
      emit("sent", {socket: socketId, frame: decodeFrame(data)})
      return super.send(data, ...rest)
    }
  }
}

const commands = {
  socket({id, url, params, opts = {}}){
    const socket = new Socket(url, {
      transport: transportFor(id, opts.origin),
      params: params || {},
      authToken: opts.authToken,
      timeout: opts.timeout,
      heartbeatIntervalMs: opts.heartbeatIntervalMs,
      reconnectAfterMs: schedule(opts.reconnectAfterMs),
      rejoinAfterMs: schedule(opts.rejoinAfterMs),
    })
    socket.onOpen(() => emit("open", {socket: id}))
    socket.onClose(ev => emit("close", {socket: id, code: ev.code, reason: ev.reason || "",
      wasClean: !!ev.wasClean}))
    socket.onError(err => emit("error", {socket: id, message: String(err && err.message || err)}))
    socket.onMessage(msg => {
      let payload = msg.payload
      if(payload && payload.response instanceof ArrayBuffer){
        payload = {...payload, response: plain(payload.response)}
      }
      emit("recv", {socket: id, frame: [msg.join_ref, msg.ref, msg.topic, msg.event, plain(payload)]})
    })
    sockets.set(id, socket)
  },
  connect({socket}){ getSocket(socket).connect() },
  disconnect({socket, code, reason}){
    getSocket(socket).disconnect(() => emit("disconnected", {socket}), code, reason)
  },
  channel({socket, id, topic, params}){
    const channel = getSocket(socket).channel(topic, params || {})
    channel.onError(reason => emit("chan_error", {chan: id, reason: reason || null}))
    channel.onClose(reason => emit("chan_close", {chan: id, reason: reason || null}))
    channels.set(id, channel)
  },
  join({chan}){
    const channel = getChannel(chan)
    const report = status => response =>
      emit("join", {chan, status, response: plain(response), join_ref: channel.joinRef()})
    // The join push is reused for every rejoin, so these fire once per (re)join attempt.
    channel.join().receive("ok", report("ok")).receive("error", report("error"))
      .receive("timeout", report("timeout"))
  },
  leave({chan}){
    const report = status => () => emit("leave", {chan, status})
    getChannel(chan).leave().receive("ok", report("ok")).receive("timeout", report("timeout"))
  },
  on({chan, event}){
    getChannel(chan).on(event, (payload, _ref, joinRef) =>
      emit("event", {chan, event, payload: plain(payload), join_ref: joinRef ?? null}))
  },
  push({chan, event, payload, binary, timeout, tag}){
    const report = status => response => emit("reply", {chan, tag: tag ?? null, status,
      response: plain(response)})
    // `binary` (hex) sends an ArrayBuffer, which phoenix.js encodes as a binary frame.
    const body = binary === undefined ? (payload || {}) :
      new Uint8Array(Buffer.from(binary, "hex")).buffer
    getChannel(chan).push(event, body, timeout)
      .receive("ok", report("ok")).receive("error", report("error"))
      .receive("timeout", report("timeout"))
  },
  state(){
    const out = {}
    for(const [id, socket] of sockets){
      const chans = {}
      for(const [cid, ch] of channels){
        if(ch.socket === socket){ chans[cid] = {topic: ch.topic, state: ch.state, join_ref: ch.joinRef()} }
      }
      out[id] = {connection: socket.connectionState(), channels: chans,
        members: socket.channels.length}
    }
    emit("state", {sockets: out})
  },
  exit(){ shutdown() },
}

function getSocket(id){
  const socket = sockets.get(id)
  if(!socket){ throw new Error(`unknown socket ${JSON.stringify(id)}`) }
  return socket
}

function getChannel(id){
  const channel = channels.get(id)
  if(!channel){ throw new Error(`unknown channel ${JSON.stringify(id)}`) }
  return channel
}

const input = readline.createInterface({input: process.stdin})
input.on("line", line => {
  if(!line.trim()){ return }
  let command
  try {
    command = JSON.parse(line)
    const run = commands[command.cmd]
    if(!run){ throw new Error(`unknown command ${JSON.stringify(command.cmd)}`) }
    run(command)
    if(command.ack !== undefined){ emit("ack", {ack: command.ack}) }
  } catch (err){
    emit("harness_error", {message: String(err && err.message || err), line})
  }
})
input.on("close", shutdown)

// Close every socket cleanly, then exit; the cap keeps a stuck close from hanging the test.
function shutdown(){
  const open = [...sockets.values()].filter(s => s.connectionState() !== "closed")
  if(open.length === 0){ process.exit(0) }
  let pending = open.length
  for(const socket of open){ socket.disconnect(() => { if(--pending === 0){ process.exit(0) } }) }
  setTimeout(() => process.exit(0), 1000).unref()
}
emit("ready", {node: process.version})
