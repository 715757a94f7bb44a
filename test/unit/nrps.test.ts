import assert from 'node:assert/strict';
import { nextLink, ourRole } from '../../src/lti/nrps.js';

describe('NRPS: pure parts', () => {
  it('maps short names, full URIs and sub-roles to learner / instructor / administrator', () => {
    assert.equal(ourRole(['Learner']), 'learner');
    assert.equal(ourRole(['Instructor']), 'instructor');
    assert.equal(ourRole(['http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor']), 'instructor');
    assert.equal(ourRole(['http://purl.imsglobal.org/vocab/lis/v2/membership/Instructor#TeachingAssistant']), 'instructor');
    assert.equal(ourRole(['Learner', 'http://purl.imsglobal.org/vocab/lis/v2/system/person#Administrator']), 'administrator');
    assert.equal(ourRole([]), 'learner');
    // course roles never make an administrator of the tool or the platform
    assert.equal(ourRole(['http://purl.imsglobal.org/vocab/lis/v2/membership#Administrator']), 'instructor');
    assert.equal(ourRole(['Administrator']), 'instructor');
    assert.equal(ourRole(['http://purl.imsglobal.org/vocab/lis/v2/institution/person#Administrator']), 'administrator');
    assert.equal(ourRole(['http://purl.imsglobal.org/vocab/lis/v2/system/person#SysAdmin']), 'administrator');
    assert.equal(ourRole(['http://example.com/unknown#Role']), 'learner');
  });

  it('finds the rel="next" link among several', () => {
    const h = '<https://p/m?from=0>; rel="first", <https://p/m?from=10>; rel="next", <https://p/m?d=1>; rel="differences"';
    assert.equal(nextLink(h, 'https://p/m'), 'https://p/m?from=10');
    assert.equal(nextLink('<https://p/m?from=0>; rel="first"', 'https://p/m'), undefined);
    assert.equal(nextLink(null, 'https://p/m'), undefined);
    assert.equal(nextLink('</m?p=2>; rel=next', 'https://p/m'), 'https://p/m?p=2');
  });
});
