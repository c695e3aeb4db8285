"""How fast the CLIP labeler's two steps are: encoding the pool batched vs one image at a time,
and a prompts-only change (label step only, embeddings cached) vs the full embed + label.

Uses the ViT-B-32 architecture with random weights (speed does not depend on the weights; no
download). Both sides of each comparison run in the same process, warmed up first and then
alternated, and the ratio of their median times is printed. A measurement, not a test.

    .venv/bin/python bench/clip_encode.py [--images 48] [--repeats 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from gradienthide import clip_labels, data


def timed(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def alternate(first, second, repeats: int) -> tuple[float, float]:
    """Median seconds of `first` and `second`, run in turns after one warm-up of each."""
    first(), second()
    times = ([], [])
    for _ in range(repeats):
        times[0].append(timed(first))
        times[1].append(timed(second))
    return statistics.median(times[0]), statistics.median(times[1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=48, help="pool size (digits, upsampled to 224x224 by CLIP)")
    parser.add_argument("--batch-size", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    import open_clip
    from open_clip.model import get_model_preprocess_cfg

    clip = open_clip.create_model("ViT-B-32", pretrained=None).eval()
    tokenizer, preprocess = open_clip.get_tokenizer("ViT-B-32"), get_model_preprocess_cfg(clip)
    images = data.load_digits_source().images[: args.images].float() / 255.0
    class_names = list(data.DIGIT_NAMES)
    templates = ["a photo of the number {}.", "a blurry photo of the number {}.", "a drawing of the number {}."]

    def encode_batched():
        return clip_labels.encode_pool(clip, preprocess, images, batch_size=args.batch_size)

    def encode_one_by_one():
        return clip_labels.encode_pool(clip, preprocess, images, batch_size=1)

    cached = {"image_features": encode_batched(), "logit_scale": clip_labels.logit_scale_of(clip)}

    def label_only():  # a prompts-only edit: the label step over cached embeddings
        return clip_labels.probabilities_from_embeddings(clip, tokenizer, embeddings=cached, class_names=class_names,
                                                         templates=templates)

    def embed_and_label():  # without the cache: encode the pool again, then label
        embedded = {"image_features": encode_batched(), "logit_scale": clip_labels.logit_scale_of(clip)}
        return clip_labels.probabilities_from_embeddings(clip, tokenizer, embeddings=embedded, class_names=class_names,
                                                         templates=templates)

    batched, single = alternate(encode_batched, encode_one_by_one, args.repeats)
    prompts_only, full = alternate(label_only, embed_and_label, args.repeats)
    print(f"ViT-B-32 (random weights), {args.images} images, {args.threads} threads, median of {args.repeats}")
    print(f"encode batched (batch {args.batch_size}): {args.images / batched:8.1f} images/s")
    print(f"encode one image at a time:        {args.images / single:8.1f} images/s")
    print(f"batched / one-at-a-time throughput ratio: {single / batched:.2f}x")
    print(f"prompts-only change (label step): {prompts_only:.3f} s; full embed + label: {full:.3f} s; "
          f"full / prompts-only time ratio: {full / prompts_only:.1f}x")


if __name__ == "__main__":
    main()
