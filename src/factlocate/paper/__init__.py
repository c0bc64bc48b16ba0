"""The paper, reproduced on one model: `factlocate report --model M --out DIR` (or `make report`).

    settings (paper.settings)  ->  sections (paper.sections: each wraps a resumable runner)
        ->  DIR/<folder>/ files  ->  DIR/index.html (paper.page), the paper's numbers beside (paper.numbers)
"""
from factlocate.paper.build import build
from factlocate.paper.settings import ReportSettings

__all__ = ["ReportSettings", "build"]
