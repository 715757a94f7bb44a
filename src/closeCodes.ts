/**
 * Websocket close codes, shared by the server (proxy, upgrade, error mapping) and the lab page's
 * bundle: the one list. 4000–4999 are ours. `final` closes end a connection for good (the page shows
 * the reason); `userCanRetry` says whether the page offers "Reconnect" for it. Codes not listed
 * (network drops, 1001 restarts, 1011) make the page reconnect by itself with a fresh ticket.
 * A leaf: no imports, so the browser bundle can take it.
 */
export interface CloseSpec {
  code: number;
  reason: string;
}

export const CLOSE = {
  labStopped: { code: 4001, reason: 'lab stopped' },
  labPaused: { code: 4001, reason: 'lab paused' },
  labExpired: { code: 4001, reason: 'lab expired' },
  sessionExpired: { code: 4002, reason: 'session expired' },
  otherTab: { code: 4003, reason: 'opened in another tab' },
  idle: { code: 4004, reason: 'closed after inactivity' },
  takeoverEnded: { code: 4005, reason: 'control given back' },
  upstreamClosed: { code: 4010, reason: 'machine disconnected' },
  unauthorized: { code: 4401, reason: 'sign in again' },
  notYourLab: { code: 4403, reason: 'not your lab' },
  notFound: { code: 4404, reason: 'lab not found' },
  conflict: { code: 4409, reason: 'conflict' },
  tooMany: { code: 4429, reason: 'too many open connections' },
  policy: { code: 1008, reason: 'bad message' },
  tooBig: { code: 1009, reason: 'message too big' },
  shutdown: { code: 1001, reason: 'server restarting' },
  internal: { code: 1011, reason: 'internal error' },
} as const satisfies Record<string, CloseSpec>;

/** Closes that end a connection for good; the value says whether the page offers a manual retry. */
export const FINAL_CLOSE: Readonly<Record<number, { userCanRetry: boolean }>> = {
  [CLOSE.labStopped.code]: { userCanRetry: false },
  [CLOSE.sessionExpired.code]: { userCanRetry: false },
  [CLOSE.otherTab.code]: { userCanRetry: true },
  [CLOSE.unauthorized.code]: { userCanRetry: false },
  [CLOSE.notYourLab.code]: { userCanRetry: false },
  [CLOSE.notFound.code]: { userCanRetry: false },
  [CLOSE.conflict.code]: { userCanRetry: false },
  [CLOSE.tooMany.code]: { userCanRetry: true },
  [CLOSE.policy.code]: { userCanRetry: true },
};
