//! Introspection gives the same neutral model of the kitchen-sink fixture in every engine.

use upkeep_core::{Engine, LogicalType as L, TableName};
use upkeep_db::{Database, OpenMode};
use upkeep_test_support::TestDb;

async fn kitchen_sink_model(engine: Engine) {
    let db = TestDb::new(engine).await;
    db.load_kitchen_sink().await;
    let mut conn = Database::connect(&db.target, OpenMode::ReadOnly)
        .await
        .unwrap();
    let schema = conn.introspect().await.unwrap();
    conn.close().await;
    let names: Vec<String> = schema.tables.iter().map(|t| t.name.to_string()).collect();
    assert_eq!(
        names,
        [
            "Mixed Case \"Quoted\" Table",
            "all_types",
            "customer",
            "empty_table",
            "float_specials",
            "no_key",
            "numbers",
            "purchase",
            "text_pk"
        ],
        "{engine}"
    );

    let types = schema.table(&TableName::unqualified("all_types")).unwrap();
    let logical = |c: &str| {
        types
            .column(c)
            .unwrap_or_else(|| panic!("{engine}: column {c}"))
            .logical
    };
    let sqlite = engine == Engine::Sqlite;
    let expected = [
        ("id", L::Int),
        ("c_bool", L::Bool),
        ("c_smallint", L::Int),
        ("c_bigint", L::Int),
        ("c_decimal", L::Decimal),
        ("c_real", if sqlite { L::Float64 } else { L::Float32 }),
        ("c_double", L::Float64),
        ("c_varchar", L::Text),
        ("c_char", if sqlite { L::Text } else { L::FixedText }),
        ("c_bytes", L::Bytes),
        ("c_date", L::Date),
        ("c_time", L::Time),
        ("c_timestamp", L::Timestamp),
        (
            "c_timestamptz",
            if sqlite { L::Text } else { L::TimestampTz },
        ),
        ("c_uuid", L::Uuid),
        // MariaDB keeps JSON as LONGTEXT with CHECK (json_valid(…)): still json.
        ("c_json", L::Json),
    ];
    for (column, want) in expected {
        assert_eq!(logical(column), want, "{engine}: all_types.{column}");
    }
    assert_eq!(
        logical("c_u64"),
        match engine {
            Engine::Postgres => L::Decimal,
            Engine::Mysql => L::Int,
            Engine::Sqlite => L::Text,
        }
    );
    assert!(types.column("c_u64").unwrap().unsigned == (engine == Engine::Mysql));

    let awkward = schema
        .table(&TableName::unqualified("Mixed Case \"Quoted\" Table"))
        .unwrap();
    assert_eq!(
        awkward.primary_key.as_ref().unwrap().columns,
        ["select", "from"],
        "{engine}"
    );
    assert!(awkward.column("名前").is_some());

    let customer = schema.table(&TableName::unqualified("customer")).unwrap();
    assert_eq!(customer.primary_key.as_ref().unwrap().columns, ["id"]);
    assert!(
        customer.unique.iter().any(|k| k.columns == ["email"]),
        "{engine}: {:?}",
        customer.unique
    );
    let self_ref = customer
        .foreign_keys
        .iter()
        .find(|f| f.columns == ["referred_by"])
        .expect("self-reference");
    assert_eq!(self_ref.references, customer.name);
    assert_eq!(self_ref.referenced_columns, ["id"]);
    assert!(
        customer.checks.len() >= 2,
        "{engine}: checks {:?}",
        customer.checks
    );
    assert!(
        customer
            .checks
            .iter()
            .any(|c| c.expression.contains("credit")),
        "{engine}: {:?}",
        customer.checks
    );
    assert!(
        customer
            .indexes
            .iter()
            .any(|i| i.name == "customer_name_idx" && i.columns == ["name"]),
        "{engine}"
    );
    assert!(!customer.column("name").unwrap().nullable);
    assert!(customer.column("referred_by").unwrap().nullable);
    assert!(
        customer
            .column("status")
            .unwrap()
            .default
            .as_deref()
            .is_some_and(|d| d.contains("active")),
        "{engine}"
    );

    let purchase = schema.table(&TableName::unqualified("purchase")).unwrap();
    let fk = purchase
        .foreign_keys
        .iter()
        .find(|f| f.columns == ["customer_id"])
        .expect("purchase → customer");
    assert_eq!(fk.references.name, "customer");
    assert!(
        purchase.unique.iter().any(|k| k.columns.len() == 3),
        "{engine}"
    );

    let no_key = schema.table(&TableName::unqualified("no_key")).unwrap();
    assert!(no_key.split_key().is_none());
    let text_pk = schema.table(&TableName::unqualified("text_pk")).unwrap();
    assert_eq!(
        text_pk
            .column(&text_pk.split_key().unwrap().columns[0])
            .unwrap()
            .logical,
        L::Text
    );
}

#[tokio::test]
async fn pg_kitchen_sink_introspects_to_the_neutral_model() {
    kitchen_sink_model(Engine::Postgres).await;
}

#[tokio::test]
async fn mysql_kitchen_sink_introspects_to_the_neutral_model() {
    kitchen_sink_model(Engine::Mysql).await;
}

#[tokio::test]
async fn sqlite_kitchen_sink_introspects_to_the_neutral_model() {
    kitchen_sink_model(Engine::Sqlite).await;
}

#[tokio::test]
async fn pg_sequences_views_partitions_and_schemas() {
    let db = TestDb::new(Engine::Postgres).await;
    db.execute(
        "CREATE SCHEMA sales;
         CREATE TABLE sales.\"Order\" (id bigserial PRIMARY KEY, amount numeric(10,2));
         INSERT INTO sales.\"Order\" (amount) VALUES (1), (2), (3);
         CREATE TABLE ident (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v inet);
         CREATE VIEW big_orders AS SELECT * FROM sales.\"Order\" WHERE amount > 1;
         CREATE TABLE measurements (id int, at date NOT NULL) PARTITION BY RANGE (at);
         CREATE TABLE measurements_2024 PARTITION OF measurements FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
         INSERT INTO measurements VALUES (1, '2024-05-01');",
    )
    .await;
    let mut conn = db.connect().await;
    let schema = conn.introspect().await.unwrap();
    conn.close().await;
    let order = schema
        .table(&TableName::new(Some("sales".into()), "Order"))
        .expect("sales.Order");
    assert_eq!(
        order.column("id").unwrap().identity,
        Some(upkeep_core::Identity::ByDefault)
    );
    let seq = schema
        .sequences
        .iter()
        .find(|s| s.owned_by.as_ref().is_some_and(|(t, _)| t == &order.name))
        .unwrap();
    assert_eq!(seq.last_value, Some(3));
    let ident = schema.table(&TableName::unqualified("ident")).unwrap();
    assert_eq!(
        ident.column("id").unwrap().identity,
        Some(upkeep_core::Identity::Always)
    );
    assert_eq!(ident.column("v").unwrap().logical, L::Other);
    assert!(schema
        .views
        .iter()
        .any(|v| v.name.name == "big_orders" && v.definition.contains("amount")));
    let parent = schema
        .table(&TableName::unqualified("measurements"))
        .unwrap();
    assert_eq!(parent.kind, upkeep_core::TableKind::Partitioned);
}
