"""The summary every benchmark reports: median, MAD (median absolute
deviation) and p95 of the samples taken after warm-up."""

import statistics
import time


def summarize(samples):
    med = statistics.median(samples)
    mad = statistics.median(abs(s - med) for s in samples)
    p95 = sorted(samples)[max(0, int(round(0.95 * len(samples))) - 1)]
    return med, mad, p95


def timed(fn):
    """Seconds `fn()` took."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start
