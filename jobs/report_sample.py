"""The sample corpus's report, as the README shows it: archive the embedded sample corpus (three
generated videos and a damaged file) at a target bpp, write the report, open it in headless
Chromium (no console errors, every image decoded, nothing fetched) and save a screenshot.

    python -m jobs.report_sample --out docs/report          # writes sample-report.png (and .html, .json)

Needs Chromium and chromedriver (scripts/bootstrap.sh --browser).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("docs/report"), help="Folder for sample-report.{png,json}.")
    p.add_argument("--target-bpp", type=float, default=0.03, help="The archive's corpus target.")
    p.add_argument("--keep-html", action="store_true", help="Also keep sample-report.html (about 1 MB).")
    p.add_argument("--max-height", type=int, default=6000, help="Screenshot height limit in pixels.")
    args = p.parse_args(argv)

    from evc_archive.core.registry import DEFAULT_KEYFRAME_CODEC, DEFAULT_PREDICTOR
    from evc_archive.core.settings import EncoderSettings
    from evc_archive.distributed.submit import SubmitConfig, submit
    from evc_archive.io.sample import write_sample_corpus
    from evc_archive.reports.archive_report import ReportOptions, build_report
    from evc_archive.reports.browser_check import check_page

    args.out.mkdir(parents=True, exist_ok=True)
    # a fixed, machine-independent place: the report (and the screenshot) show these paths
    tmp = Path(tempfile.gettempdir()) / "evc-sample"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        corpus, archive = tmp / "sample-corpus", tmp / "sample-archive"
        write_sample_corpus(corpus)
        # `evc-archive submit`'s defaults (rate control picks per segment)
        summary = submit(SubmitConfig(str(corpus), str(archive), EncoderSettings.product(), DEFAULT_PREDICTOR,
                                      target_bpp=args.target_bpp, keyframe_codec=DEFAULT_KEYFRAME_CODEC))
        html = build_report(ReportOptions(str(archive)))
        page = Path(tmp, "sample-report.html")
        page.write_text(html)
        check = check_page(page, args.out / "sample-report.png", max_height=args.max_height)
        if args.keep_html:
            (args.out / "sample-report.html").write_text(html)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result = {"segments_ok": summary.segments_ok, "failed_sources": summary.failed_sources, "bpp": summary.bpp,
              "target_bpp": args.target_bpp, "html_bytes": len(html), "browser": {
                  "title": check.title.replace(str(tmp), "$TMPDIR/evc-sample"), "console_errors": list(check.console_errors), "images": check.images,
                  "images_not_decoded": list(check.images_not_decoded),
                  "network_requests": list(check.network_requests), "page_height": check.page_height}}
    (args.out / "sample-report.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0 if check.ok else 1


if __name__ == "__main__":
    sys.exit(main())
