/**
 * CSP `frame-ancestors` for every page of the tool: only the registered platforms may frame us
 * (Moodle shows the tool in an iframe). Pages keep their own CSP; this adds the directive when a
 * response is about to send its headers without one (`X-Frame-Options` cannot list origins).
 */
import type { RequestHandler, Response } from 'express';

export function frameAncestorsDirective(origins: string[]): string {
  return `frame-ancestors ${origins.length ? origins.join(' ') : "'none'"}`;
}

export function frameAncestors(origins: () => string[]): RequestHandler {
  return (_req, res, next) => {
    const writeHead = res.writeHead as (...a: unknown[]) => Response;
    (res as { writeHead: unknown }).writeHead = function (this: Response, ...args: unknown[]) {
      const csp = res.getHeader('Content-Security-Policy');
      const fa = frameAncestorsDirective(origins());
      if (csp === undefined) res.setHeader('Content-Security-Policy', fa);
      else if (!/(^|;)\s*frame-ancestors\b/.test(String(csp))) res.setHeader('Content-Security-Policy', `${String(csp)}; ${fa}`);
      return writeHead.apply(this, args);
    };
    next();
  };
}
