#!/usr/bin/python3
"""reference.py writes reference.json: what PaddleOCR's pre- and
post-processing give, with OpenCV, NumPy, Shapely and pyclipper, on small
inputs it draws from a fixed seed. The Go tests (reference_test.go in
package ocr) run the same inputs through imgproc, geom and dbpost and
compare.

The functions below follow PaddleOCR 2.7's code (Apache-2.0):
ppocr/postprocess/db_postprocess.py (DBPostProcess with box_type quad,
score_mode fast), tools/infer/predict_det.py (order_points_clockwise,
clip_det_res, filter_tag_det_res), tools/infer/utility.py
(get_rotate_crop_image) and ppocr/data/imaug/operators.py
(DetResizeForTest, limit_type max).

Run with Debian's python3 and python3-opencv, python3-shapely,
python3-pyclipper: /usr/bin/python3 reference.py > reference.json
"""
import base64
import json
import sys

import cv2
import numpy as np
import pyclipper
from shapely.geometry import Polygon


def get_mini_boxes(contour):
    bounding_box = cv2.minAreaRect(contour)
    points = sorted(list(cv2.boxPoints(bounding_box)), key=lambda x: x[0])
    if points[1][1] > points[0][1]:
        index_1, index_4 = 0, 1
    else:
        index_1, index_4 = 1, 0
    if points[3][1] > points[2][1]:
        index_2, index_3 = 2, 3
    else:
        index_2, index_3 = 3, 2
    box = [points[index_1], points[index_2], points[index_3], points[index_4]]
    return box, min(bounding_box[1])


def box_score_fast(bitmap, _box):
    h, w = bitmap.shape[:2]
    box = _box.copy()
    xmin = np.clip(np.floor(box[:, 0].min()).astype("int32"), 0, w - 1)
    xmax = np.clip(np.ceil(box[:, 0].max()).astype("int32"), 0, w - 1)
    ymin = np.clip(np.floor(box[:, 1].min()).astype("int32"), 0, h - 1)
    ymax = np.clip(np.ceil(box[:, 1].max()).astype("int32"), 0, h - 1)
    mask = np.zeros((ymax - ymin + 1, xmax - xmin + 1), dtype=np.uint8)
    box[:, 0] = box[:, 0] - xmin
    box[:, 1] = box[:, 1] - ymin
    cv2.fillPoly(mask, box.reshape(1, -1, 2).astype("int32"), 1)
    return cv2.mean(bitmap[ymin:ymax + 1, xmin:xmax + 1], mask)[0]


def unclip(box, unclip_ratio):
    poly = Polygon(box)
    distance = poly.area * unclip_ratio / poly.length
    offset = pyclipper.PyclipperOffset()
    offset.AddPath(box, pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
    return np.array(offset.Execute(distance))


def boxes_from_bitmap(pred, bitmap, dest_width, dest_height, box_thresh=0.6, unclip_ratio=1.5,
                      max_candidates=1000, min_size=3):
    height, width = bitmap.shape
    contours, _ = cv2.findContours((bitmap * 255).astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    boxes, scores = [], []
    for contour in contours[:max_candidates]:
        points, sside = get_mini_boxes(contour)
        if sside < min_size:
            continue
        points = np.array(points)
        score = box_score_fast(pred, points.reshape(-1, 2))
        if box_thresh > score:
            continue
        box = unclip(points, unclip_ratio)
        if len(box) > 1:
            continue
        box = box.reshape(-1, 1, 2)
        box, sside = get_mini_boxes(box)
        if sside < min_size + 2:
            continue
        box = np.array(box)
        box[:, 0] = np.clip(np.round(box[:, 0] / width * dest_width), 0, dest_width)
        box[:, 1] = np.clip(np.round(box[:, 1] / height * dest_height), 0, dest_height)
        boxes.append(box.astype("int32"))
        scores.append(score)
    return boxes, scores


def order_points_clockwise(pts):
    rect = np.zeros((4, 2), dtype="float32")
    s = pts.sum(axis=1)
    rect[0] = pts[np.argmin(s)]
    rect[2] = pts[np.argmax(s)]
    tmp = np.delete(pts, (np.argmin(s), np.argmax(s)), axis=0)
    diff = np.diff(np.array(tmp), axis=1)
    rect[1] = tmp[np.argmin(diff)]
    rect[3] = tmp[np.argmax(diff)]
    return rect


def filter_tag_det_res(dt_boxes, scores, shape):
    img_height, img_width = shape[0:2]
    out = []
    for box, score in zip(dt_boxes, scores):
        box = order_points_clockwise(box)
        for pno in range(box.shape[0]):
            box[pno, 0] = int(min(max(box[pno, 0], 0), img_width - 1))
            box[pno, 1] = int(min(max(box[pno, 1], 0), img_height - 1))
        rect_width = int(np.linalg.norm(box[0] - box[1]))
        rect_height = int(np.linalg.norm(box[0] - box[3]))
        if rect_width <= 3 or rect_height <= 3:
            continue
        out.append((box, score))
    return out


def get_rotate_crop_image(img, points):
    img_crop_width = int(max(np.linalg.norm(points[0] - points[1]), np.linalg.norm(points[2] - points[3])))
    img_crop_height = int(max(np.linalg.norm(points[0] - points[3]), np.linalg.norm(points[1] - points[2])))
    pts_std = np.float32([[0, 0], [img_crop_width, 0], [img_crop_width, img_crop_height], [0, img_crop_height]])
    M = cv2.getPerspectiveTransform(points, pts_std)
    dst_img = cv2.warpPerspective(img, M, (img_crop_width, img_crop_height),
                                  borderMode=cv2.BORDER_REPLICATE, flags=cv2.INTER_CUBIC)
    if dst_img.shape[0] * 1.0 / dst_img.shape[1] >= 1.5:
        dst_img = np.rot90(dst_img)
    return dst_img


def b64(a):
    return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode()


def blob_map(rng, w, h):
    """A probability map of a few rotated text-like bars, blurred, in 1/255 steps."""
    m = np.zeros((h, w), np.float32)
    for _ in range(rng.randint(2, 8)):
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        bw, bh = rng.uniform(4, w / 2), rng.uniform(2, h / 5)
        ang = rng.uniform(-30, 30)
        pts = cv2.boxPoints(((cx, cy), (bw, bh), ang)).astype(np.int32)
        cv2.fillPoly(m, [pts], float(rng.uniform(0.7, 1.0)))
    m = cv2.GaussianBlur(m, (5, 5), 1.2)
    return (np.round(m * 255) / 255).astype(np.float32)


def main():
    rng = np.random.RandomState(13)
    out = {"opencv": cv2.__version__, "resize": [], "crop": [], "db": []}
    # cv2.resize(INTER_LINEAR) on 3-channel uint8.
    for sw, sh, dw, dh in [(37, 23, 13, 9), (13, 9, 37, 23), (40, 30, 20, 15), (64, 48, 32, 32), (50, 20, 160, 48),
                           (151, 29, 96, 32), (7, 5, 7, 48)]:
        img = rng.randint(0, 256, (sh, sw, 3)).astype(np.uint8)
        res = cv2.resize(img, (dw, dh))
        out["resize"].append({"w": sw, "h": sh, "dw": dw, "dh": dh, "src": b64(img), "want": b64(res)})
    # get_rotate_crop_image on a smooth image (cubic overshoot stays small).
    base = cv2.GaussianBlur(rng.randint(0, 256, (60, 80, 3)).astype(np.uint8), (7, 7), 2)
    for pts in [[[10, 10], [50, 12], [49, 30], [9, 28]], [[5, 40], [70, 20], [74, 32], [9, 52]],
                [[20, 5], [30, 5], [30, 50], [20, 50]], [[0, 0], [79, 0], [79, 59], [0, 59]]]:
        p = np.array(pts, np.float32)
        res = get_rotate_crop_image(base, p)
        out["crop"].append({"pts": pts, "w": res.shape[1], "h": res.shape[0], "want": b64(res)})
    out["crop_src"] = {"w": 80, "h": 60, "src": b64(base)}
    # DB post-process on synthetic maps, with a source image twice as big.
    for i in range(24):
        w, h = int(rng.randint(16, 96)), int(rng.randint(16, 64))
        m = blob_map(rng, w, h)
        sw, sh = 2 * w + int(rng.randint(0, 9)), 2 * h + int(rng.randint(0, 9))
        boxes, scores = boxes_from_bitmap(m, m > 0.3, sw, sh)
        kept = filter_tag_det_res(boxes, scores, (sh, sw))
        out["db"].append({"w": w, "h": h, "sw": sw, "sh": sh, "map": b64(np.round(m * 255).astype(np.uint8)),
                          "boxes": [b.tolist() for b, _ in kept], "scores": [float(s) for _, s in kept]})
    # DetResizeForTest sizes (limit_type max, limit 960).
    sizes = []
    for w, h in [(1280, 720), (100, 50), (16, 16), (961, 300), (300, 2000), (48, 80), (1000, 1000), (1920, 1080)]:
        ratio = 1.0
        if max(h, w) > 960:
            ratio = 960.0 / h if h > w else 960.0 / w
        rh, rw = int(h * ratio), int(w * ratio)
        rh = max(int(round(rh / 32) * 32), 32)
        rw = max(int(round(rw / 32) * 32), 32)
        sizes.append([w, h, rw, rh])
    out["det_sizes"] = sizes
    json.dump(out, sys.stdout, indent=None, separators=(",", ":"))


main()
