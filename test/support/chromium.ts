/** Headless Chromium for browser tests (the system's /usr/bin/chromium through playwright-core). */
import fs from 'node:fs';
import path from 'node:path';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TestTool } from './tool.js';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

export const ARTIFACTS = path.resolve('test-artifacts');

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_BIN ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run'],
  });
}

/** A picture of the viewport, or with fullPage of the whole scrolling page, in test-artifacts/<name>.png. */
export async function screenshot(page: Page, name: string, fullPage = false): Promise<string> {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  // let transitions (progress bars) finish, so the picture shows the real state: wait for each finite one to end
  await Promise.all(page.frames().map((f) => f.evaluate(`Promise.all(document.getAnimations()
    .filter((a) => a.effect && a.effect.getComputedTiming().endTime !== Infinity)
    .map((a) => a.finished.catch(() => undefined)))`).catch(() => undefined)));
  const file = path.join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage });
  return file;
}

/** A page on another origin that frames a URL the way Moodle does (for "inside the iframe" checks). */
export async function startFramingHost(): Promise<{ url(frameSrc: string): string; origin: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const src = new URL(req.url ?? '/', 'http://x').searchParams.get('src') ?? '';
    res.setHeader('content-type', 'text/html');
    res.end(`<!doctype html><html><head><meta charset="utf-8"><title>Course: Networks 101</title><style>
body{margin:0;font-family:sans-serif;background:#f1f1f1} header{background:#0f6cbf;color:#fff;padding:10px 16px;font-size:18px}
nav{float:left;width:200px;height:calc(100vh - 44px);background:#fff;border-right:1px solid #ddd;padding:12px;box-sizing:border-box}
main{margin-left:200px;padding:10px 16px} iframe{width:100%;height:calc(100vh - 90px);border:1px solid #ccc;background:#fff}
</style></head><body><header>Moodle · Networks 101</header><nav>Course index<br><br>Week 1<br>Linux basics lab</nav>
<main><h3 style="margin:4px 0 8px">Linux basics lab</h3><iframe id="tool" src="${src.replace(/"/g, '&quot;')}" allow="clipboard-read; clipboard-write; fullscreen"></iframe></main></body></html>`);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: (frameSrc) => `http://localhost:${port}/?src=${encodeURIComponent(frameSrc)}`,
    origin: `http://localhost:${port}`,
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

export interface FramedBrowser {
  host: Awaited<ReturnType<typeof startFramingHost>>;
  browser: Browser;
  ctx: BrowserContext;
  close(): Promise<void>;
}

/**
 * A framing host that stands for Moodle, registered in `tool` as a platform (so the tool's CSP
 * frame-ancestors lets it frame the tool's pages), and Chromium with one desktop-sized context.
 */
export async function framedBrowser(tool: Pick<TestTool, 'lti'>): Promise<FramedBrowser> {
  const host = await startFramingHost();
  await tool.lti.registry.register({
    issuer: host.origin, clientId: 'framing-host', authUrl: `${host.origin}/auth`, tokenUrl: `${host.origin}/token`, jwksUrl: `${host.origin}/jwks`,
    deploymentIds: ['1'], registeredBy: 'manual',
  });
  const browser = await launchChromium();
  const ctx = await browser.newContext({ viewport: { width: 1366, height: 768 } });
  return {
    host, browser, ctx,
    close: async () => {
      await ctx.close();
      await browser.close();
      await host.close();
    },
  };
}
