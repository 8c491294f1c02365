DROP TABLE login_states;
DROP TABLE load_jobs;
DROP TABLE packages;
DROP TABLE permissions;
DROP TABLE users;
