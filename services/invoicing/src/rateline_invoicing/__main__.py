from rateline_invoicing.app import MIGRATIONS
from rateline_invoicing.events import SERVICE
from rateline_invoicing.settings import InvoicingSettings
from rateline_shared.service import service_main


def main() -> None:
    service_main(
        service=SERVICE,
        app_factory="rateline_invoicing.app:create_app",
        settings=InvoicingSettings(),
        migrations_dir=MIGRATIONS,
    )


if __name__ == "__main__":
    main()
