// Package ocr reads the text in an image with PaddleOCR's PP-OCRv4 models
// on ONNX Runtime, step for step as PaddleOCR's TextSystem
// (tools/infer/predict_system.py) with its default settings but one:
//
//  1. Detection: the image (BGR, as cv2 reads it) is resized so that its
//     longer side is at most 960 and both sides are multiples of 32
//     (DetResizeForTest, limit_type "max"), normalized with ImageNet's
//     mean and std (NormalizeImage), and the DB detector's probability map
//     is turned into boxes by package dbpost, with one setting changed:
//     boxes grow by an unclip ratio of 2.5, not 1.5 (DefaultUnclipRatio).
//  2. Reading order: boxes sorted by their top-left corner, top to bottom,
//     then left to right within 10 pixels of height (sorted_boxes).
//  3. Crops: each box is cut out and rectified by a perspective warp to
//     its own width and height; a crop at least 1.5 times as high as wide
//     is turned 90° counter-clockwise (get_rotate_crop_image).
//  4. Orientation (Options.Classify; off by default, as PaddleOCR's
//     use_angle_cls): the classifier sees each crop at height 48 in a
//     192-wide canvas (values scaled to [−1, 1]); crops it calls 180° with
//     probability above 0.9 are turned over.
//  5. Recognition: crops sorted by aspect ratio, in batches of 6, each
//     resized to height 48 and padded to the batch's widest ratio (at
//     least 320/48) (RecResizeImg), decoded by package ctc; lines whose
//     confidence is below 0.5 are dropped (drop_score).
//
// Image arithmetic is in package imgproc, geometry in geom.
package ocr
