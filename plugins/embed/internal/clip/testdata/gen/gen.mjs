// Generates the reference data of the Go CLIP preprocessing test
// (TestPixelsMatchTransformersJS): test images made with sharp, and the
// pixel_values transformers.js's CLIPImageProcessor (in Node: sharp and
// libvips) gives for each, with openai/clip-vit-base-patch32's
// preprocessor_config.json (shortest edge 224, bicubic, centre crop 224,
// rescale 1/255, CLIP's mean and std). Nothing is fetched at run time.
//
//   npm ci && node gen.mjs     rewrites ../images/* and ../pixels/*.f32.gz and ../pixels.json
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import zlib from "node:zlib";
import { fileURLToPath } from "node:url";
import sharp from "sharp";
import { AutoImageProcessor, RawImage, env } from "@huggingface/transformers";

const here = path.dirname(fileURLToPath(import.meta.url));
const testdata = path.resolve(here, "..");

env.allowRemoteModels = false;
env.allowLocalModels = true;

// The preprocessor_config.json dsmil-mkmodel writes for clip-vit-b32 (the
// values of openai/clip-vit-base-patch32's).
const preprocessor = {
  image_processor_type: "CLIPImageProcessor",
  feature_extractor_type: "CLIPFeatureExtractor",
  do_resize: true, size: { shortest_edge: 224 }, resample: 3,
  do_center_crop: true, crop_size: { height: 224, width: 224 },
  do_rescale: true, rescale_factor: 1 / 255, do_normalize: true,
  image_mean: [0.48145466, 0.4578275, 0.40821073], image_std: [0.26862954, 0.26130258, 0.27577711],
  do_convert_rgb: true,
};

// A seeded LCG, so the images are the same on every run.
function rng(seed) {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296);
}

// raw builds w×h pixels of c channels from f(x, y) -> [values].
function raw(w, h, c, f) {
  const buf = Buffer.alloc(w * h * c);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    const v = f(x, y);
    for (let k = 0; k < c; k++) buf[(y * w + x) * c + k] = Math.max(0, Math.min(255, Math.round(v[k])));
  }
  return sharp(buf, { raw: { width: w, height: h, channels: c } });
}

const images = {
  // Smooth colours with a sharp-edged disc: a downscale by 1.61.
  "scene-360x480.png": () => raw(360, 480, 3, (x, y) => {
    const d = Math.hypot(x - 180, y - 220) < 90;
    return d ? [230, 40, 50] : [x * 255 / 359, y * 255 / 479, 128 + 100 * Math.sin(x / 17 + y / 23)];
  }).png(),
  // Stripes and checks (high frequencies), landscape, an odd scale.
  "checks-500x300.png": () => raw(500, 300, 3, (x, y) => {
    const c = ((x >> 3) + (y >> 3)) & 1 ? 220 : 30;
    return [c, (x % 7) * 36, y % 2 ? 250 : 10];
  }).png(),
  // Noise: every stencil weight matters.
  "noise-333x222.png": () => { const r = rng(7); return raw(333, 222, 3, () => [r() * 256, r() * 256, r() * 256]).png(); },
  // Smaller than 224: an upscale.
  "small-100x60.png": () => raw(100, 60, 3, (x, y) => [x * 2.5, y * 4, (x ^ y) & 255]).png(),
  // Already 224×224: no resize.
  "exact-224x224.png": () => { const r = rng(3); return raw(224, 224, 3, (x, y) => [x, y, r() * 256]).png(); },
  // Grey with transparency: the alpha is dropped, not composited.
  "alpha-gray-301x257.png": () => raw(301, 257, 4, (x, y) => [x % 256, x % 256, x % 256, (y * 3) % 256]).png(),
  "gray-257x301.png": () => raw(257, 301, 1, (x, y) => [(x * y) % 256]).png(),
  // JPEGs: 4:4:4 (decoders agree but for IDCT rounding) and 4:2:0
  // (libjpeg's fancy chroma upsampling, which Go's decoder does not do).
  "photo-444-400x300.jpg": () => raw(400, 300, 3, (x, y) => [128 + 120 * Math.sin(x / 30), 128 + 120 * Math.cos(y / 25), (x + y) % 256]).jpeg({ quality: 90, chromaSubsampling: "4:4:4" }),
  "photo-420-400x300.jpg": () => raw(400, 300, 3, (x, y) => [128 + 120 * Math.sin(x / 30), 128 + 120 * Math.cos(y / 25), (x + y) % 256]).jpeg({ quality: 90, chromaSubsampling: "4:2:0" }),
  // EXIF orientation 6 (stored rotated): both sides turn it upright.
  "exif6-320x240.jpg": () => raw(320, 240, 3, (x, y) => [x * 0.8, y, x < 40 ? 255 : 0]).jpeg({ quality: 92, chromaSubsampling: "4:4:4" }).withMetadata({ orientation: 6 }),
};

async function main() {
  const imgDir = path.join(testdata, "images");
  const pxDir = path.join(testdata, "pixels");
  fs.rmSync(imgDir, { recursive: true, force: true });
  fs.rmSync(pxDir, { recursive: true, force: true });
  fs.mkdirSync(imgDir, { recursive: true });
  fs.mkdirSync(pxDir, { recursive: true });
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "dsmil-clip-"));
  fs.mkdirSync(path.join(tmp, "clip"));
  fs.writeFileSync(path.join(tmp, "clip", "preprocessor_config.json"), JSON.stringify(preprocessor));
  env.localModelPath = tmp + path.sep;
  const proc = await AutoImageProcessor.from_pretrained("clip", { local_files_only: true });
  const index = {
    generator: "transformers.js " + JSON.parse(fs.readFileSync(path.join(here, "node_modules/@huggingface/transformers/package.json"))).version +
      ", sharp " + sharp.versions.sharp + ", libvips " + sharp.versions.vips,
    preprocessor,
    images: [],
  };
  for (const [name, make] of Object.entries(images)) {
    const file = await make().toBuffer();
    fs.writeFileSync(path.join(imgDir, name), file);
    const img = await RawImage.fromBlob(new Blob([file]));
    const { pixel_values } = await proc(img);
    const data = pixel_values.data;
    fs.writeFileSync(path.join(pxDir, name + ".f32.gz"), zlib.gzipSync(Buffer.from(data.buffer, data.byteOffset, data.byteLength), { level: 9 }));
    index.images.push({ name, dims: pixel_values.dims, decoded: [img.width, img.height, img.channels] });
    console.log(name, pixel_values.dims.join("x"), `decoded ${img.width}x${img.height}x${img.channels}`);
  }
  fs.writeFileSync(path.join(testdata, "pixels.json"), JSON.stringify(index, null, 1) + "\n");
  fs.rmSync(tmp, { recursive: true, force: true });
}

await main();
