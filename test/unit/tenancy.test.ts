import assert from 'node:assert/strict';
import { loadConfig } from '../../src/config.js';
import { actorOfSession, isOperatorUser, isPlatformAdminRole, mayUseLab, mustManageLab, operatorUsers } from '../../src/auth/tenancy.js';

const LIS = 'http://purl.imsglobal.org/vocab/lis/v2/';

describe('tenancy rules', () => {
  it('only institution and system Administrator roles make a platform administrator', () => {
    assert.equal(isPlatformAdminRole([`${LIS}institution/person#Administrator`]), true);
    assert.equal(isPlatformAdminRole([`${LIS}system/person#Administrator`]), true);
    assert.equal(isPlatformAdminRole([`${LIS}system/person#SysAdmin`]), true);
    assert.equal(isPlatformAdminRole([`${LIS}membership#Administrator`]), false);
    assert.equal(isPlatformAdminRole(['Administrator', 'SysAdmin']), false);
    assert.equal(isPlatformAdminRole([`https://evil.example/institution/person#Administrator/x`]), false);
  });

  it('operators are named by issuer and user id together', () => {
    const ops = operatorUsers(' https://lms.example#2 ,https://other.example/x#abc');
    assert.equal(isOperatorUser(ops, 'https://lms.example', '2'), true);
    assert.equal(isOperatorUser(ops, 'https://other.example/x', 'abc'), true);
    assert.equal(isOperatorUser(ops, 'https://other.example/x', '2'), false);
    assert.throws(() => loadConfig({ LAB_MODE: 'demo', OPERATOR_USERS: 'alice' }), /OPERATOR_USERS: expected comma-separated <issuer>#<user id>/);
    assert.equal(loadConfig({ LAB_MODE: 'demo', OPERATOR_USERS: 'https://lms.example#2' }).OPERATOR_USERS, 'https://lms.example#2');
  });

  it('a session administers only as an operator or as its platform\'s administrator', () => {
    assert.deepEqual(actorOfSession({ userId: 'u', role: 'administrator', contextId: 'c', platformId: 'p1' }), { kind: 'platform', platformId: 'p1' });
    assert.deepEqual(actorOfSession({ userId: 'u', role: 'learner', contextId: 'c', platformId: 'p1', operator: true }), { kind: 'operator' });
    assert.equal(actorOfSession({ userId: 'u', role: 'administrator', contextId: 'c' }), undefined, 'no platform: administers nothing');
    assert.equal(actorOfSession({ userId: 'u', role: 'instructor', contextId: 'c', platformId: 'p1' }), undefined);
  });

  it('labs: the operator\'s for everyone, a platform\'s for that platform; managing another\'s is refused', () => {
    const a = { kind: 'platform', platformId: 'a' } as const;
    assert.equal(mayUseLab({ kind: 'public' }, null), true);
    assert.equal(mayUseLab({ kind: 'public' }, 'a'), false);
    assert.equal(mayUseLab(a, 'a'), true);
    assert.equal(mayUseLab(a, 'b'), false);
    assert.equal(mayUseLab({ kind: 'operator' }, 'b'), true);
    mustManageLab(a, 'x', 'a');
    mustManageLab(a, 'x', undefined);
    mustManageLab({ kind: 'operator' }, 'x', 'b');
    assert.throws(() => mustManageLab(a, 'x', null), { name: 'Forbidden' });
    assert.throws(() => mustManageLab(a, 'x', 'b'), { name: 'NotFound' });
    assert.throws(() => mustManageLab(a, 'x', 'b', { adding: true }), { name: 'LabIdTaken' });
  });
});
