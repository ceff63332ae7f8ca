//! Creating the schema and loading it, in parallel blocks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use upkeep_core::{BatchBuilder, Engine};
use upkeep_db::{ddl, quote, Database, DbError, OpenMode, Target};

use crate::data::{fill_block, row_counts, shop_schema, BLOCK_ROWS};

#[derive(Clone, Debug)]
pub struct GenerateOptions {
    pub target: Target,
    /// Rows of `order_lines`; the other tables are sized from it.
    pub rows: u64,
    pub seed: u64,
    pub jobs: usize,
    /// Drop the four tables first if they exist.
    pub replace: bool,
}

impl GenerateOptions {
    pub fn new(target: Target, rows: u64) -> Self {
        Self {
            target,
            rows,
            seed: 42,
            jobs: 2,
            replace: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GenerateError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("table {table} already exists in {target}: pass --replace to drop and regenerate it")]
    Exists { table: String, target: String },
}

impl GenerateError {
    pub fn kind(&self) -> upkeep_core::ErrorKind {
        match self {
            Self::Db(e) => e.kind(),
            Self::Exists { .. } => upkeep_core::ErrorKind::Usage,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GenerateReport {
    pub target: String,
    pub seed: u64,
    pub tables: Vec<GeneratedTable>,
    pub total_rows: u64,
    pub duration_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GeneratedTable {
    pub table: String,
    pub rows: u64,
    pub duration_ms: u64,
}

pub async fn run(options: GenerateOptions) -> Result<GenerateReport, GenerateError> {
    let started = Instant::now();
    let target = &options.target;
    let engine = target.engine();
    let schema = shop_schema();
    let mut admin = Database::connect(target, OpenMode::Create).await?;
    let existing = admin.introspect().await?;
    for t in schema.iter().rev() {
        if existing.table(&t.name).is_some() {
            if !options.replace {
                admin.close().await;
                return Err(GenerateError::Exists {
                    table: t.name.to_string(),
                    target: target.display().to_owned(),
                });
            }
            admin
                .execute_script(&format!("DROP TABLE {}", quote::table(engine, &t.name)))
                .await?;
        }
    }
    for t in &schema {
        admin
            .execute_script(&ddl::create_table(engine, t, false))
            .await?;
    }
    // The rows are valid by construction: keys are added after the load without checking
    // each row again (on MariaDB a foreign key added with checks on rebuilds its table,
    // which then carries no change stamp and is read by every backup until its next change).
    let load = upkeep_db::BulkLoad {
        regenerable: true,
        ..upkeep_db::BulkLoad::default()
    };
    admin.begin_bulk_load(load).await?;

    let counts = row_counts(options.rows);
    // SQLite has one writer; the servers load with `jobs` connections.
    let jobs = if engine == Engine::Sqlite {
        1
    } else {
        options.jobs.max(1)
    };
    let mut tables = Vec::new();
    for (index, table) in schema.iter().enumerate() {
        let table_started = Instant::now();
        let blocks = counts[index].div_ceil(BLOCK_ROWS);
        let next = Arc::new(AtomicU64::new(0));
        let mut workers = Vec::new();
        for _ in 0..jobs {
            let (next, table, target) = (next.clone(), table.clone(), target.clone());
            let (seed, total) = (options.seed, counts[index]);
            workers.push(tokio::spawn(async move {
                let mut db = Database::connect(&target, OpenMode::ReadWrite).await?;
                db.begin_bulk_load(load).await?;
                let mut builder = BatchBuilder::new(usize::MAX, usize::MAX);
                loop {
                    let block = next.fetch_add(1, Ordering::Relaxed);
                    if block >= blocks {
                        break;
                    }
                    let first = block * BLOCK_ROWS;
                    let count = BLOCK_ROWS.min(total - first);
                    fill_block(index, seed, first, count, &counts, &mut builder);
                    let batch = builder.take();
                    db.write_batch(&table, &batch).await?;
                }
                db.close().await;
                Ok::<_, DbError>(())
            }));
        }
        for w in workers {
            w.await
                .map_err(|e| DbError::Unsupported(format!("a generator worker failed: {e}")))??;
        }
        for stmt in ddl::post_load(engine, table) {
            admin.execute_script(&stmt).await?;
        }
        tables.push(GeneratedTable {
            table: table.name.to_string(),
            rows: counts[index],
            duration_ms: u64::try_from(table_started.elapsed().as_millis()).unwrap_or(u64::MAX),
        });
    }
    let analyze = match engine {
        Engine::Postgres => "ANALYZE customers, orders, order_lines, documents".to_owned(),
        Engine::Mysql => "ANALYZE TABLE customers, orders, order_lines, documents".to_owned(),
        Engine::Sqlite => "ANALYZE".to_owned(),
    };
    admin.execute_script(&analyze).await?;
    admin.close().await;
    Ok(GenerateReport {
        target: target.display().to_owned(),
        seed: options.seed,
        total_rows: tables.iter().map(|t| t.rows).sum(),
        tables,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    })
}
