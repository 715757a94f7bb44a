/**
 * The one http.Server. It listens first (so the resolved URL is known to everything wired after),
 * but answers every request from the first byte: 503 "starting" with Retry-After until the app is
 * attached, so a request in that window is never left hanging.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Config } from '../config.js';
import type { Closers } from './Closers.js';

export interface ToolServer {
  server: http.Server;
  /** The URL the server actually listens on (port resolved when PORT=0). */
  url: string;
  /** PUBLIC_URL, or in its absence the listening URL. */
  publicUrl: string;
  /** Route requests to the app from now on. */
  attach(handler: http.RequestListener): void;
}

export async function listenHttp(config: Config, closers: Closers): Promise<ToolServer> {
  let handler: http.RequestListener | undefined;
  const server = http.createServer((req, res) => {
    if (handler) return handler(req, res);
    res.writeHead(503, { 'Content-Type': 'text/plain; charset=utf-8', 'Retry-After': '1', 'Cache-Control': 'no-store' });
    res.end('starting\n');
  });
  server.headersTimeout = 30_000;
  server.requestTimeout = 120_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.PORT, config.HOST, () => resolve());
  });
  closers.add('http', () => closeServer(server, 0));
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  const url = `http://${host === '0.0.0.0' || host === '[::]' ? 'localhost' : host}:${addr.port}`;
  return { server, url, publicUrl: config.PUBLIC_URL ?? url, attach: (h) => { handler = h; } };
}

/** A second server for /metrics (METRICS_PORT); returns its URL. */
export async function listenMetrics(port: number, host: string, handler: http.RequestListener, closers: Closers): Promise<string> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  closers.add('metrics-http', () => closeServer(server, 0));
  return `http://${host}:${(server.address() as AddressInfo).port}/metrics`;
}

/** Stop accepting; idle keep-alive sockets close now, busy ones when their response ends or the grace ends. */
export function closeServer(server: http.Server, graceMs: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => server.closeAllConnections(), graceMs);
    // a keep-alive socket whose last response just ended is idle: close it now, not at keepAliveTimeout
    const idle = setInterval(() => server.closeIdleConnections(), 50);
    server.close(() => {
      clearTimeout(timer);
      clearInterval(idle);
      resolve();
    });
    server.closeIdleConnections();
  });
}
