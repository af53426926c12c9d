from rateline_customer.app import MIGRATIONS
from rateline_customer.events import SERVICE
from rateline_customer.settings import CustomerSettings
from rateline_shared.service import service_main


def main() -> None:
    service_main(
        service=SERVICE,
        app_factory="rateline_customer.app:create_app",
        settings=CustomerSettings(),
        migrations_dir=MIGRATIONS,
    )


if __name__ == "__main__":
    main()
