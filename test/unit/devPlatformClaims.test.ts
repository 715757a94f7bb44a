import assert from 'node:assert/strict';
import { launchClaims, serviceUrls, demoUser, demoClass, DEMO_USERS, CLAIM, registrationProblems } from '../../src/devPlatform/claims.js';

describe('development platform: pure parts', () => {
  const base = {
    issuer: 'http://localhost:3000/dev-platform', clientId: 'c', deploymentId: '1', typeId: 1, nonce: 'n',
    targetLinkUri: 'http://localhost:3000/lti', toolCustom: { a: 'tool' }, returnUrl: 'http://localhost:3000/dev-platform/', now: 0,
  };

  it('a class-sized course adds learners with ids and keys of their own; the demo users stay as they are', () => {
    const users = demoClass(40);
    assert.equal(users.length, DEMO_USERS.length + 40);
    assert.deepEqual(users.slice(0, DEMO_USERS.length), [...DEMO_USERS]);
    const l7 = demoUser('learner7', users);
    assert.deepEqual(l7, { id: '1007', key: 'learner7', givenName: 'Learner', familyName: '7', email: 'learner7@example.edu', role: 'Learner' });
    assert.equal(demoUser('1040', users)?.key, 'learner40');
    assert.equal(new Set(users.map((u) => u.id)).size, users.length, 'ids are unique');
    // without the class, its learners are nobody
    assert.equal(demoUser('learner7'), undefined);
    assert.equal(demoClass().length, DEMO_USERS.length);
  });

  it('puts Moodle-style ?type_id= queries on service URLs', () => {
    const u = serviceUrls('https://p/dev-platform', '2', 7);
    assert.equal(u.lineItem('x'), 'https://p/dev-platform/services/2/lineitems/x/lineitem?type_id=7');
    assert.equal(u.lineItems, 'https://p/dev-platform/services/2/lineitems?type_id=7');
  });

  it('builds resource-link claims with the activity\'s custom params over the tool\'s, and no deep-linking settings', () => {
    const c = launchClaims({ ...base, user: demoUser('student')!, messageType: 'LtiResourceLinkRequest',
      activity: { id: 'r1', title: 'T', lineItemId: null, custom: { a: 'activity', b: '2' } } });
    assert.deepEqual(c[CLAIM.custom], { a: 'activity', b: '2' });
    assert.equal((c[CLAIM.ags] as Record<string, unknown>).lineitem, undefined, 'no lineitem claim for an ungraded activity');
    assert.equal(c[CLAIM.deepLinkingSettings], undefined);
    assert.deepEqual(c[CLAIM.resourceLink], { id: 'r1', title: 'T', description: '' });
  });

  it('builds deep-linking claims without a resource link', () => {
    const c = launchClaims({ ...base, user: demoUser('teacher')!, messageType: 'LtiDeepLinkingRequest', deepLink: { returnUrl: 'http://r', data: 'd' } });
    assert.equal(c[CLAIM.resourceLink], undefined);
    assert.equal((c[CLAIM.deepLinkingSettings] as { data: string }).data, 'd');
  });

  it('checks dynamic registration requests like Moodle', () => {
    const ok = {
      token_endpoint_auth_method: 'private_key_jwt', response_types: ['id_token'], initiate_login_uri: 'http://t:8080/login',
      redirect_uris: ['http://t:8080/lti'], jwks_uri: 'http://t:8080/keys',
      'https://purl.imsglobal.org/spec/lti-tool-configuration': { domain: 't:8080', target_link_uri: 'http://t:8080/lti' },
    };
    assert.deepEqual(registrationProblems(ok), []);
    assert.match(registrationProblems({ ...ok, 'https://purl.imsglobal.org/spec/lti-tool-configuration': { domain: 't', target_link_uri: 'http://t:8080/lti' } }).join(), /port/);
    assert.match(registrationProblems({ ...ok, token_endpoint_auth_method: 'none' }).join(), /private_key_jwt/);
    assert.match(registrationProblems({ ...ok, response_types: [] }).join(), /id_token/);
  });
});
