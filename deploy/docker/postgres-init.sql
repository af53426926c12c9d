-- docker-compose: one PostgreSQL server, one database per service (none reads another's).
-- Runs once, when the data volume is empty (/docker-entrypoint-initdb.d).
CREATE DATABASE rateline_gateway;
CREATE DATABASE rateline_customer;
CREATE DATABASE rateline_catalog;
CREATE DATABASE rateline_usage;
CREATE DATABASE rateline_invoicing;
CREATE DATABASE rateline_payment;
CREATE DATABASE rateline_webhooks;
