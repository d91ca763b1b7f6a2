// run.mjs reads image files with @gutenye/ocr-node and prints one JSON
// object per image: {"file", "lines": [text...], "ms"}.
import Ocr from '@gutenye/ocr-node';
const ocr = await Ocr.create();
for (const file of process.argv.slice(2)) {
  const t0 = performance.now();
  const res = await ocr.detect(file);
  const ms = performance.now() - t0;
  console.log(JSON.stringify({ file, lines: res.map((r) => r.text), ms }));
}
