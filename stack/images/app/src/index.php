<?php
// The stack's application: a small page on MariaDB.
//
// Writes go to the primary and reads to a replica, over persistent (pooled) mysqli connections
// (the "p:" host prefix): each PHP-FPM worker keeps its connection to a host open between
// requests. Which server is the primary comes from the topology file that the failover
// procedure rewrites (hsc-topology / hsc-failover in the MariaDB image); it is read on every
// request, so a promotion repoints the application without a restart.
//
//   GET  /healthz        PHP answers (liveness; no database involved)
//   GET  /readyz         the writer and a reader answer
//   POST /api/write      key=<1-64 of [A-Za-z0-9_.-]>: inserts a row on the primary; 201 only
//                        after the commit (and, with semi-synchronous replication, after a
//                        replica has it)
//   GET  /api/read       row count and newest id, from a reader (the writer if none answers)
//   GET  /               a small HTML page with the same numbers
declare(strict_types=1);

const SCHEMA = 'CREATE TABLE IF NOT EXISTS items ('
    . ' id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,'
    . ' k VARCHAR(64) NOT NULL UNIQUE,'
    . ' served_by VARCHAR(64) NOT NULL,'
    . ' created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)'
    . ') ENGINE=InnoDB';
const ER_NO_SUCH_TABLE = 1146;
const ER_DUP_ENTRY = 1062;

mysqli_report(MYSQLI_REPORT_ERROR | MYSQLI_REPORT_STRICT);

function env(string $name, string $default): string
{
    $value = getenv($name);
    return ($value === false || $value === '') ? $default : $value;
}

/** @return array{writer: string, readers: list<string>, generation: int} */
function topology(): array
{
    $raw = @file_get_contents(env('HSC_DB_TOPOLOGY_FILE', '/run/hsc-db/topology.json'));
    if ($raw !== false) {
        $t = json_decode($raw, true);
        if (is_array($t) && is_string($t['writer'] ?? null) && $t['writer'] !== '') {
            $readers = array_values(array_filter(is_array($t['readers'] ?? null) ? $t['readers'] : [], 'is_string'));
            return ['writer' => $t['writer'], 'readers' => $readers ?: [$t['writer']], 'generation' => (int) ($t['generation'] ?? 0)];
        }
    }
    $writer = env('HSC_DB_WRITER_HOST', '');
    if ($writer === '') {
        throw new RuntimeException('no database configured: no topology file and no HSC_DB_WRITER_HOST');
    }
    $readers = array_values(array_filter(array_map('trim', explode(',', env('HSC_DB_READER_HOSTS', '')))));
    return ['writer' => $writer, 'readers' => $readers ?: [$writer], 'generation' => 0];
}

function connect(string $host): mysqli
{
    $password = @file_get_contents(env('HSC_DB_PASSWORD_FILE', '/run/hsc-app/db_password'));
    if ($password === false) {
        throw new RuntimeException('the database password file is unreadable');
    }
    $db = mysqli_init();
    // A lost server must cost a request seconds, not minutes.
    $db->options(MYSQLI_OPT_CONNECT_TIMEOUT, 2);
    $db->options(MYSQLI_OPT_READ_TIMEOUT, 5);
    // "p:" makes the connection persistent: the next request of this worker reuses it (mysqli
    // checks that a reused connection still works and opens a new one when it does not).
    $db->real_connect('p:' . $host, env('HSC_DB_USER', 'app'), rtrim($password, "\r\n"),
        env('HSC_DB_NAME', 'app'), (int) env('HSC_DB_PORT', '3306'));
    return $db;
}

function respond(int $status, array $body): void
{
    http_response_code($status);
    header('Content-Type: application/json');
    header('Cache-Control: no-store');
    echo json_encode($body, JSON_UNESCAPED_SLASHES), "\n";
}

function write_item(): void
{
    $key = (string) ($_POST['key'] ?? $_GET['key'] ?? '');
    if (preg_match('/^[A-Za-z0-9_.-]{1,64}$/', $key) !== 1) {
        respond(400, ['error' => 'key must be 1 to 64 letters, digits, _ . -']);
        return;
    }
    $t = topology();
    $db = connect($t['writer']);
    $servedBy = (string) gethostname();
    try {
        $insert = $db->prepare('INSERT INTO items (k, served_by) VALUES (?, ?)');
    } catch (mysqli_sql_exception $e) {
        if ($e->getCode() !== ER_NO_SUCH_TABLE) {
            throw $e;
        }
        $db->query(SCHEMA);
        $insert = $db->prepare('INSERT INTO items (k, served_by) VALUES (?, ?)');
    }
    $insert->bind_param('ss', $key, $servedBy);
    try {
        // Autocommit: execute() returns once the row is committed.
        $insert->execute();
    } catch (mysqli_sql_exception $e) {
        if ($e->getCode() === ER_DUP_ENTRY) {
            respond(409, ['error' => 'key exists', 'key' => $key]);
            return;
        }
        throw $e;
    }
    respond(201, ['id' => $insert->insert_id, 'key' => $key, 'writer' => $t['writer'], 'generation' => $t['generation']]);
}

/** @return array{count: int, last_id: int, reader: string} */
function read_summary(): array
{
    $t = topology();
    $hosts = $t['readers'];
    shuffle($hosts);
    // Graceful degradation: when no replica answers, the primary serves the read.
    $hosts[] = $t['writer'];
    $failure = null;
    foreach (array_unique($hosts) as $host) {
        try {
            $db = connect($host);
            try {
                $row = $db->query('SELECT COUNT(*) AS n, COALESCE(MAX(id), 0) AS last_id FROM items')->fetch_assoc();
            } catch (mysqli_sql_exception $e) {
                if ($e->getCode() !== ER_NO_SUCH_TABLE) {
                    throw $e;
                }
                $row = ['n' => 0, 'last_id' => 0];
            }
            return ['count' => (int) $row['n'], 'last_id' => (int) $row['last_id'], 'reader' => $host];
        } catch (mysqli_sql_exception $e) {
            error_log("read from $host failed: " . $e->getMessage());
            $failure = $e;
        }
    }
    throw $failure ?? new RuntimeException('no database host to read from');
}

function readiness(): void
{
    $t = topology();
    $checks = [];
    foreach (array_unique(array_merge([$t['writer']], $t['readers'])) as $host) {
        try {
            connect($host)->query('SELECT 1');
            $checks[$host] = 'ok';
        } catch (Throwable $e) {
            $checks[$host] = 'unavailable';
        }
    }
    $writerOk = $checks[$t['writer']] === 'ok';
    respond($writerOk ? 200 : 503, ['writer' => $t['writer'], 'hosts' => $checks, 'generation' => $t['generation']]);
}

$path = parse_url((string) ($_SERVER['REQUEST_URI'] ?? '/'), PHP_URL_PATH) ?: '/';
$method = (string) ($_SERVER['REQUEST_METHOD'] ?? 'GET');
try {
    switch ($path) {
        case '/healthz':
            respond(200, ['status' => 'ok']);
            break;
        case '/readyz':
            readiness();
            break;
        case '/api/write':
            if ($method !== 'POST') {
                header('Allow: POST');
                respond(405, ['error' => 'POST only']);
                break;
            }
            write_item();
            break;
        case '/api/read':
            respond(200, read_summary());
            break;
        case '/':
            $s = read_summary();
            header('Content-Type: text/html; charset=utf-8');
            header('Cache-Control: no-store');
            printf("<!doctype html>\n<title>hsc app</title>\n<h1>%d items</h1>\n<p>newest id %d, read from %s, served by %s</p>\n",
                $s['count'], $s['last_id'], htmlspecialchars($s['reader']), htmlspecialchars((string) gethostname()));
            break;
        default:
            respond(404, ['error' => 'not found']);
    }
} catch (Throwable $e) {
    // Details go to the log, not to the client.
    error_log('request failed: ' . get_class($e) . ': ' . $e->getMessage());
    respond(503, ['error' => 'database unavailable']);
}
