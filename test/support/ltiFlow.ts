/**
 * Drive LTI flows through real HTTP the way a browser would: a cookie jar per origin, redirects
 * followed by hand, and auto-submitting forms (login initiation, id_token hand-off, deep-linking
 * response) parsed and submitted. No mocks: every hop is a real request to the running servers.
 *
 *   const b = new Browser();
 *   const r = await launchAs(b, tool.devPlatform!.urls.issuer, { activityId, user: 'student' });
 *   r.status, r.url, r.location, r.body, r.steps
 */

export interface FormData {
  action: string;
  method: string;
  fields: Record<string, string>;
}

export interface Step {
  method: string;
  url: string;
  status: number;
  location?: string;
  form?: FormData;
}

export interface FlowResult {
  /** The last response's status, URL, headers and body. */
  status: number;
  url: string;
  headers: Headers;
  body: string;
  /** Its Location header, when the flow stopped on a redirect (stopAt, or maxSteps). */
  location: string | undefined;
  steps: Step[];
}

export interface FollowOptions {
  maxSteps?: number;
  /** Return before requesting this URL (e.g. the lab page); the result is the response that pointed there. */
  stopAt?: (next: { method: string; url: string }) => boolean;
  /** Inspect or change an auto-submitted form before it is sent (e.g. tamper with the id_token). */
  onForm?: (form: FormData) => FormData | void | Promise<FormData | void>;
}

function decodeEntities(s: string): string {
  return s.replace(/&(#x[0-9a-f]+|#\d+|amp|lt|gt|quot|apos);/gi, (_m, e: string) => {
    const l = e.toLowerCase();
    if (l === 'amp') return '&';
    if (l === 'lt') return '<';
    if (l === 'gt') return '>';
    if (l === 'quot') return '"';
    if (l === 'apos') return "'";
    return String.fromCodePoint(l.startsWith('#x') ? parseInt(l.slice(2), 16) : parseInt(l.slice(1), 10));
  });
}

function attrs(tag: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of tag.matchAll(/([\w:-]+)\s*=\s*("([^"]*)"|'([^']*)'|([^\s>]+))/g)) {
    out[m[1]!.toLowerCase()] = decodeEntities(m[3] ?? m[4] ?? m[5] ?? '');
  }
  return out;
}

/** Every form in an HTML page with its inputs (hidden or not), actions resolved against baseUrl. */
export function parseForms(html: string, baseUrl: string): Array<FormData & { id?: string }> {
  const forms: Array<FormData & { id?: string }> = [];
  for (const m of html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/gi)) {
    const a = attrs(m[1]!);
    const fields: Record<string, string> = {};
    for (const i of m[2]!.matchAll(/<input\b([^>]*)>/gi)) {
      const ia = attrs(i[1]!);
      if (ia.name) fields[ia.name] = ia.value ?? '';
    }
    forms.push({ action: new URL(a.action ?? baseUrl, baseUrl).toString(), method: (a.method ?? 'get').toUpperCase(), fields, ...(a.id ? { id: a.id } : {}) });
  }
  return forms;
}

/** The form a page submits by script on load (`….submit()`), if any. */
export function autoSubmittedForm(html: string, baseUrl: string): FormData | undefined {
  if (!/\.submit\(\)/.test(html)) return undefined;
  const forms = parseForms(html, baseUrl);
  for (const f of forms) if (f.id && html.includes(`getElementById('${f.id}').submit()`)) return f;
  for (const f of forms) if (f.id && html.includes(`getElementById("${f.id}").submit()`)) return f;
  return forms.length === 1 ? forms[0] : undefined;
}

/** A minimal browser: per-origin cookie jar (Path-scoped, Secure honoured) and manual redirects. */
export class Browser {
  /** `headers` go with every request (an Accept-Language, say). */
  constructor(private readonly headers: Record<string, string> = {}) {}

  private readonly jar = new Map<string, Map<string, { value: string; path: string; secure: boolean }>>();

  cookieHeader(url: string): string {
    const u = new URL(url);
    const cookies = this.jar.get(u.host);
    if (!cookies) return '';
    return [...cookies.entries()]
      .filter(([, c]) => u.pathname.startsWith(c.path) && (!c.secure || u.protocol === 'https:'))
      .map(([k, c]) => `${k}=${c.value}`)
      .join('; ');
  }

  /** Cookies set for a host (name → value), for assertions. */
  cookies(url: string): Record<string, string> {
    return Object.fromEntries([...(this.jar.get(new URL(url).host)?.entries() ?? [])].map(([k, c]) => [k, c.value]));
  }

  clearCookies(): void {
    this.jar.clear();
  }

  private store(url: string, res: Response): void {
    const u = new URL(url);
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attrsList] = line.split(';').map((s) => s.trim());
      const eq = pair!.indexOf('=');
      const name = pair!.slice(0, eq);
      const value = pair!.slice(eq + 1);
      const a = Object.fromEntries(attrsList.map((x) => {
        const i = x.indexOf('=');
        return i < 0 ? [x.toLowerCase(), ''] : [x.slice(0, i).toLowerCase(), x.slice(i + 1)];
      }));
      const jar = this.jar.get(u.host) ?? new Map();
      this.jar.set(u.host, jar);
      const expired = a['max-age'] !== undefined ? Number(a['max-age']) <= 0 : a.expires !== undefined && Date.parse(a.expires) < Date.now();
      if (expired || value === '') jar.delete(name);
      else jar.set(name, { value, path: a.path || '/', secure: 'secure' in a });
    }
  }

  /** One request, no redirect following; cookies sent and stored. */
  async request(url: string, o: { method?: string; form?: Record<string, string>; headers?: Record<string, string> } = {}): Promise<Response> {
    const headers: Record<string, string> = { accept: 'text/html,application/json;q=0.9', ...this.headers, ...o.headers };
    const cookie = this.cookieHeader(url);
    if (cookie) headers.cookie = cookie;
    let body: string | undefined;
    if (o.form) {
      body = new URLSearchParams(o.form).toString();
      headers['content-type'] = 'application/x-www-form-urlencoded';
    }
    const res = await fetch(url, { method: o.method ?? (o.form ? 'POST' : 'GET'), headers, body, redirect: 'manual' });
    this.store(url, res);
    return res;
  }

  /** Submit a form (as the browser would) and follow what comes back. */
  submit(form: FormData, o: FollowOptions = {}): Promise<FlowResult> {
    return this.follow({ method: form.method, url: form.action, form: form.fields }, o);
  }

  /** Make a request, then follow redirects and auto-submitted forms until a page that is neither. */
  async follow(first: { method: string; url: string; form?: Record<string, string> }, o: FollowOptions = {}): Promise<FlowResult> {
    const steps: Step[] = [];
    let next: { method: string; url: string; form?: Record<string, string> } | undefined = first;
    let last: { res: Response; url: string; body: string } | undefined;
    for (let i = 0; next && i < (o.maxSteps ?? 12); i++) {
      if (last && o.stopAt?.({ method: next.method, url: next.url })) break;
      const res = await this.request(next.url, { method: next.method, ...(next.form ? { form: next.form } : {}) });
      const body = await res.text();
      const step: Step = { method: next.method, url: next.url, status: res.status };
      const location = res.headers.get('location');
      last = { res, url: next.url, body };
      next = undefined;
      if (res.status >= 300 && res.status < 400 && location) {
        step.location = new URL(location, step.url).toString();
        next = { method: res.status === 307 || res.status === 308 ? step.method : 'GET', url: step.location };
      } else if (res.status === 200 && (res.headers.get('content-type') ?? '').includes('html')) {
        let form = autoSubmittedForm(body, step.url);
        if (form) {
          form = (await o.onForm?.(form)) ?? form;
          step.form = form;
          next = { method: form.method, url: form.action, form: form.fields };
        }
      }
      steps.push(step);
    }
    if (!last) throw new Error('no request made');
    const loc = last.res.headers.get('location');
    return {
      status: last.res.status, url: last.url, headers: last.res.headers, body: last.body,
      location: loc ? new URL(loc, last.url).toString() : undefined, steps,
    };
  }
}

/**
 * Launch through the development platform as a demo user ('student', 'student2', 'teacher' or a
 * user id): POST /launch on the platform, then follow the login initiation, the tool's redirect to
 * the platform's /auth and the id_token form POST to the tool, to wherever the tool ends.
 * Pass `{ clientId, deepLink: true }` instead of `activityId` for a deep-linking request.
 */
export function launchAs(
  browser: Browser,
  platformIssuer: string,
  what: { user: string } & ({ activityId: string } | { clientId: string; deepLink: true }),
  o: FollowOptions = {},
): Promise<FlowResult> {
  const form: Record<string, string> = { user: what.user };
  if ('activityId' in what) form.activityId = what.activityId;
  else Object.assign(form, { clientId: what.clientId, deepLink: '1' });
  return browser.follow({ method: 'POST', url: `${platformIssuer}/launch`, form }, o);
}

/**
 * An onForm hook that rewrites the id_token on its way to the tool: `mutate` gets the decoded
 * claims and header and returns the ones to send (or a finished JWT string); the result is signed
 * with the development platform's real key unless `mutate` returned a string. For security tests:
 *   onForm: tamperIdToken(dp, (c) => ({ claims: { ...c, aud: [c.aud, 'evil'] } }))
 */
export function tamperIdToken(
  platform: { signJwt(payload: Record<string, unknown>, header?: Record<string, unknown>): Promise<string> },
  mutate: (claims: Record<string, unknown>, header: Record<string, unknown>) =>
    { claims: Record<string, unknown>; header?: Record<string, unknown> } | string | Promise<{ claims: Record<string, unknown>; header?: Record<string, unknown> } | string>,
): (form: FormData) => Promise<FormData | void> {
  return async (form) => {
    const jwt = form.fields.id_token;
    if (!jwt) return undefined;
    const [h, p] = jwt.split('.');
    const header = JSON.parse(Buffer.from(h!, 'base64url').toString()) as Record<string, unknown>;
    const claims = JSON.parse(Buffer.from(p!, 'base64url').toString()) as Record<string, unknown>;
    const out = await mutate(claims, header);
    const idToken = typeof out === 'string' ? out : await platform.signJwt(out.claims, out.header);
    return { ...form, fields: { ...form.fields, id_token: idToken } };
  };
}
