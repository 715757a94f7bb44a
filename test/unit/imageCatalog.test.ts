import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ImageCatalog, imageNameProblem, parseCatalog } from '../../src/images/ImageCatalog.js';
import { resolveLocalImage } from '../../src/images/localImage.js';

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'img-catalog-'));
}

describe('image catalog', () => {
  it('ships debian-12, debian-12-desktop and the test-only lab-tiny, each built by a recipe', () => {
    const c = ImageCatalog.builtIn();
    assert.deepEqual(c.names(), ['debian-12', 'debian-12-desktop', 'lab-tiny']);
    assert.deepEqual(c.names({ includeTestOnly: false }), ['debian-12', 'debian-12-desktop']);
    const d = c.get('debian-12')!;
    assert.equal(d.recipe, 'debian-12');
    assert.deepEqual(d.qemu, { dir: 'debian-12' });
    assert.deepEqual(d.kubevirt, {}, 'no registry reference until an admin pushes the containerDisk');
    assert.equal(c.get('lab-tiny')!.testOnly, true);
  });

  it('merges an admin file: new images, and only the fields it sets on existing ones', () => {
    const dir = tmp();
    const file = path.join(dir, 'images.yaml');
    fs.writeFileSync(file, `schemaVersion: 1
images:
  debian-12:
    kubevirt: { containerDisk: registry.example.edu/labs/debian-12:4f964b8b }
  ubuntu-24:
    description: Ubuntu 24.04
    qemu: { dir: /srv/images/ubuntu-24 }
`);
    const c = ImageCatalog.load(file);
    assert.deepEqual(c.names(), ['debian-12', 'debian-12-desktop', 'ubuntu-24', 'lab-tiny']);
    assert.equal(c.kubevirtContainerDisk('debian-12'), 'registry.example.edu/labs/debian-12:4f964b8b');
    assert.equal(c.get('debian-12')!.recipe, 'debian-12', 'the recipe is kept');
    assert.match(c.get('debian-12')!.description, /^Debian 12/);
    assert.deepEqual(c.get('ubuntu-24'), { name: 'ubuntu-24', description: 'Ubuntu 24.04', testOnly: false, qemu: { dir: '/srv/images/ubuntu-24' }, kubevirt: {} });
  });

  it('reports every problem of a catalog file with file:line:col', () => {
    const text = `schemaVersion: 2
images:
  ../etc:
    description: x
  debian-12:
    colour: red
    kubevirt: { containerDisk: "not a reference" }
    testOnly: maybe
extra: 1
`;
    assert.throws(() => parseCatalog(text, 'admin/images.yaml'), (err: Error) => {
      assert.equal(err.name, 'ConfigError');
      assert.deepEqual(err.message.split('\n'), [
        'Invalid image catalog:',
        '  admin/images.yaml:1:16 schemaVersion: expected 1, got 2',
        '  admin/images.yaml:9:8 extra: expected one of schemaVersion, images, got "extra"',
        '  admin/images.yaml:3:3 images.../etc: expected an image name from the image catalog, not a path or a registry reference (no "/" or ".."), got "../etc"',
        '  admin/images.yaml:6:13 images.debian-12.colour: expected one of description, recipe, testOnly, qemu, kubevirt, got "colour"',
        '  admin/images.yaml:8:15 images.debian-12.testOnly: expected true or false, got "maybe"',
        '  admin/images.yaml:7:32 images.debian-12.kubevirt.containerDisk: expected a container image reference such as registry.example.edu/labs/debian-12:1, got "not a reference"',
      ]);
      return true;
    });
  });

  it('reports a YAML syntax error at its position, and an unreadable file by name', () => {
    assert.throws(() => parseCatalog('schemaVersion: 1\nimages:\n  a: [\n', 'x.yaml'), { name: 'ConfigError', message: /^Invalid image catalog:\n  x\.yaml:4:1 \(syntax\): expected valid YAML/ });
    assert.throws(() => ImageCatalog.load('/nonexistent/images.yaml'), { name: 'ConfigError', message: /image catalog \/nonexistent\/images\.yaml: cannot read it/ });
  });

  it('names: refuses paths, registry references and "..", accepts catalog names', () => {
    for (const bad of ['a/b', '../x', 'x..y', 'quay.io/containerdisks/debian:12']) assert.match(imageNameProblem(bad) ?? '', /no "\/" or "\.\."/, bad);
    assert.match(imageNameProblem('Debian') ?? '', /expected an image name/);
    for (const ok of ['debian-12', 'lab-tiny', 'ubuntu-24.04', 'img_1']) assert.equal(imageNameProblem(ok), undefined, ok);
  });
});

describe('image files on this host', () => {
  it('resolves a built image through its symlink to the exact version folder, from image.json', () => {
    const dir = tmp();
    const v = path.join(dir, 'debian-12-0123456789ab');
    fs.mkdirSync(v);
    for (const f of ['disk.qcow2', 'vmlinuz', 'initrd.img', 'vmlinux']) fs.writeFileSync(path.join(v, f), 'x');
    fs.writeFileSync(path.join(v, 'image.json'), JSON.stringify({ name: 'debian-12', version: '0123456789ab', disk: 'disk.qcow2', kernel: 'vmlinuz', initrd: 'initrd.img', vmlinux: 'vmlinux', cmdline: 'root=LABEL=lab-root rw' }));
    fs.symlinkSync('debian-12-0123456789ab', path.join(dir, 'debian-12'));
    const img = resolveLocalImage(ImageCatalog.builtIn(), dir, 'debian-12');
    const real = fs.realpathSync(v);
    assert.deepEqual(img, {
      name: 'debian-12', dir: real, version: '0123456789ab', diskRole: 'root', disk: path.join(real, 'disk.qcow2'), cloudInit: true,
      boot: { kernel: path.join(real, 'vmlinuz'), vmlinux: path.join(real, 'vmlinux'), initrd: path.join(real, 'initrd.img'), cmdline: 'root=LABEL=lab-root rw' },
    });
  });

  it('resolves lab-tiny\'s older layout (initramfs system, /home disk)', () => {
    const dir = tmp();
    fs.mkdirSync(path.join(dir, 'lab-tiny-abc'));
    for (const f of ['disk.qcow2', 'vmlinuz', 'initramfs.gz']) fs.writeFileSync(path.join(dir, 'lab-tiny-abc', f), 'x');
    fs.symlinkSync('lab-tiny-abc', path.join(dir, 'lab-tiny'));
    const img = resolveLocalImage(ImageCatalog.builtIn(), dir, 'lab-tiny');
    assert.equal(img.diskRole, 'home');
    assert.equal(img.cloudInit, false);
    assert.equal(img.version, 'abc');
    assert.equal(img.boot.initrd, path.join(fs.realpathSync(dir), 'lab-tiny-abc', 'initramfs.gz'));
  });

  it('a missing image names the image and the command that builds it', () => {
    const dir = tmp();
    assert.throws(() => resolveLocalImage(ImageCatalog.builtIn(), dir, 'debian-12-desktop'), (err: Error & { publicMessage?: string }) => {
      assert.equal(err.name, 'ImageMissing');
      assert.match(err.message, /^image "debian-12-desktop" is not on this host \(no .*debian-12-desktop\): build it with `scripts\/build-image\.sh debian-12-desktop`$/);
      assert.match(err.publicMessage ?? '', /its image "debian-12-desktop" is not built on this server/);
      return true;
    });
    fs.mkdirSync(path.join(dir, 'debian-12'));
    fs.writeFileSync(path.join(dir, 'debian-12', 'image.json'), JSON.stringify({ disk: 'disk.qcow2', kernel: 'vmlinuz', initrd: 'initrd.img' }));
    assert.throws(() => resolveLocalImage(ImageCatalog.builtIn(), dir, 'debian-12'), { name: 'ImageMissing', message: /no .*debian-12\/disk\.qcow2\): build it with `scripts\/build-image\.sh debian-12`/ });
    assert.throws(() => resolveLocalImage(ImageCatalog.builtIn(), dir, 'nope'), { name: 'ImageMissing', message: /image "nope" is not in the image catalog/ });
  });

  it('an admin image without a recipe says where its files go', () => {
    const dir = tmp();
    const c = ImageCatalog.builtIn().with('ubuntu-24', { qemu: { dir: path.join(dir, 'u24') } });
    assert.throws(() => resolveLocalImage(c, dir, 'ubuntu-24'), { name: 'ImageMissing', message: new RegExp(`put its files in ${dir}/u24$`) });
  });
});
