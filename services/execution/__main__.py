"""``python -m services.execution --config FILE``"""

from common.service import main
from services.execution.service import ExecutionService

if __name__ == "__main__":
    main(ExecutionService)
