/** Every collection of the tool and its expiry rules, so start-up ensures indexes and sweeps in one place. */
import { Activity } from './Activity.js';
import { CheckResult } from './CheckResult.js';
import { CheckRunLock } from './CheckRunLock.js';
import { DeepLinkRequest } from './DeepLinkRequest.js';
import { GradeOutbox, gradeOutboxExpiryRules } from './GradeOutbox.js';
import { LabDefinition } from './LabDefinition.js';
import { LabGeneration } from './LabGeneration.js';
import { LabInstance } from './LabInstance.js';
import { LoginState, UsedNonce, ltiExpiryRules } from './LtiLogin.js';
import { Platform } from './Platform.js';
import { TicketUse, ticketUseExpiryRules } from './TicketUse.js';
import { User } from './User.js';
import { SocketSeat, socketSeatExpiryRules } from './SocketSeat.js';
import { CheckRate, checkRateExpiryRules } from './CheckRate.js';
import { RateSlot, rateSlotExpiryRules } from './RateSlots.js';
import { LaunchLog, launchLogExpiryRules } from './LaunchLog.js';
import { LabEventRow, labEventExpiryRules } from './LabEventLog.js';
import { ClassMessage, Hand, Takeover, TakeoverLog, classroomExpiryRules } from './Classroom.js';
import { WarmSession } from './WarmSession.js';
import { WarmClaim, warmClaimExpiryRules } from './WarmLabs.js';
import type { ExpiryRule } from './ExpirySweeper.js';

export const ALL_MODELS: ReadonlyArray<{ createIndexes(): Promise<unknown> }> = [
  Activity, CheckResult, CheckRunLock, DeepLinkRequest, GradeOutbox, LabDefinition, LabGeneration, LabInstance,
  LoginState, UsedNonce, Platform, TicketUse, User, SocketSeat, CheckRate, RateSlot, LaunchLog, LabEventRow, Hand, ClassMessage, Takeover, TakeoverLog, WarmSession, WarmClaim,
];

export const ALL_EXPIRY_RULES: readonly ExpiryRule[] = [...gradeOutboxExpiryRules, ...ltiExpiryRules, ...ticketUseExpiryRules, ...socketSeatExpiryRules, ...checkRateExpiryRules, ...rateSlotExpiryRules, ...launchLogExpiryRules, ...labEventExpiryRules, ...classroomExpiryRules, ...warmClaimExpiryRules];
