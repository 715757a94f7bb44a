import assert from 'node:assert/strict';
import { cloudConfigLogin, quantityToMiB } from '../support/kubevirt-standin/guests.js';

describe('KubeVirt stand-in guest settings', () => {
  it('reads KubeVirt memory quantities in MiB', () => {
    assert.equal(quantityToMiB('128Mi', 1), 128);
    assert.equal(quantityToMiB('1Gi', 1), 1024);
    assert.equal(quantityToMiB('512M', 1), 489);
    assert.equal(quantityToMiB(undefined, 256), 256);
    assert.equal(quantityToMiB('lots', 64), 64);
  });

  it('takes hostname and login from #cloud-config user data (top-level user/password or the first user)', () => {
    assert.deepEqual(cloudConfigLogin('#cloud-config\nhostname: web\nuser: "ada"\npassword: "pw: x"\nchpasswd: { expire: false }\n'), { hostname: 'web', user: 'ada', password: 'pw: x' });
    assert.deepEqual(cloudConfigLogin('#cloud-config\nusers:\n  - name: bob\n    plain_text_passwd: hunter2\n'), { hostname: undefined, user: 'bob', password: 'hunter2' });
    assert.deepEqual(cloudConfigLogin('#!/bin/sh\necho hi\n'), {});
    assert.deepEqual(cloudConfigLogin('#cloud-config\n: : bad yaml ['), {});
    assert.deepEqual(cloudConfigLogin(undefined), {});
  });
});
