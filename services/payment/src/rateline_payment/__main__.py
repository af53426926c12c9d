from rateline_payment.app import MIGRATIONS
from rateline_payment.events import SERVICE
from rateline_payment.settings import PaymentSettings
from rateline_shared.service import service_main


def main() -> None:
    service_main(
        service=SERVICE,
        app_factory="rateline_payment.app:create_app",
        settings=PaymentSettings(),
        migrations_dir=MIGRATIONS,
    )


if __name__ == "__main__":
    main()
