from common.service import main
from services.market_data.service import SERVICE_CLASS

if __name__ == "__main__":
    main(SERVICE_CLASS)
